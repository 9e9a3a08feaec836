import Foundation

/// `session-affinity-scorer`: favours the endpoint this session used last. The session's
/// endpoint comes from the `x-session-token` header (base64 of `ip:port`, as the Gateway API
/// Inference Extension sets it) or from the Scheduler's own memory of the session id.
///
/// The endpoint scores 1 less the share of the prompt a prefix scorer earlier in the profile
/// already matched there (0 elsewhere): the session signal says "this conversation's cache is
/// there", which a prefix match on the same endpoint says too, so the two are not counted
/// twice — together they never outweigh saturation (see the README for the weight).
public struct SessionAffinityScorer: EndpointScorer {
    public let type = "session-affinity-scorer"
    public let name: String
    public init(name: String) { self.name = name }

    static func make(name: String, parameters p: inout PluginParameters) throws -> SessionAffinityScorer { SessionAffinityScorer(name: name) }

    public func score(_ candidates: [EndpointSnapshot], context: inout SchedulingContext, ledger: RoutingLedger) -> [Double] {
        var target = ledger.sessionEndpoint(context.request.sessionKey)
        if let token = context.request.headers["x-session-token"], let data = Data(base64Encoded: token),
           let text = String(data: data, encoding: .utf8), let a = EndpointAddress(text) {
            target = a
        }
        guard let target else { return candidates.map { _ in 0 } }
        let matched = context.totalPrefixBlocks > 0 ? Double(context.matchedPrefixBlocks[target] ?? 0) / Double(context.totalPrefixBlocks) : 0
        let credit = 1 - min(1, matched)
        return candidates.map { $0.address == target ? credit : 0 }
    }

    /// The token a response carries so a client can pin its next request.
    public static func token(for endpoint: EndpointAddress) -> String {
        Data(endpoint.description.utf8).base64EncodedString()
    }

    /// The weight the session signal takes in `profile`, from the profile's load scorers:
    /// the whole weight of the scorers normalised over the candidates (`active-request-scorer`,
    /// `queue-scorer`: a single request of difference swings all of it) plus half the weight
    /// of `saturation-scorer`. A session so weighted stays on its endpoint until that carries
    /// about half the saturation threshold more than the alternative, and leaves it once it is
    /// saturated (the README works through both bounds).
    public static func balancedWeight(in profile: EndpointPickerConfig.Profile) -> Double {
        profile.scorers.reduce(0) { sum, s in
            switch s.scorer {
            case is ActiveRequestScorer, is QueueScorer: sum + s.weight
            case is SaturationScorer: sum + s.weight / 2
            default: sum
            }
        }
    }
}
