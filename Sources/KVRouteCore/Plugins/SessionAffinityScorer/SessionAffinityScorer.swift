import Foundation

/// `session-affinity-scorer`: 1 for the endpoint this session used last, 0 elsewhere. The
/// session's endpoint comes from the `x-session-token` header (base64 of `ip:port`, as the
/// Gateway API Inference Extension sets it) or from the Scheduler's own memory of the
/// session id.
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
        return candidates.map { $0.address == target ? 1 : 0 }
    }

    /// The token a response carries so a client can pin its next request.
    public static func token(for endpoint: EndpointAddress) -> String {
        Data(endpoint.description.utf8).base64EncodedString()
    }
}
