/// `active-request-scorer`: prefers endpoints with fewer requests in flight, counted by the
/// router itself at pick time — so a burst of identical requests arriving together spreads
/// instead of herding onto the endpoint that looked best before any of them landed.
/// Score = 1 − inFlight / max inFlight over the candidates (all equal → 1).
public struct ActiveRequestScorer: EndpointScorer {
    public let type = "active-request-scorer"
    public let name: String
    public init(name: String) { self.name = name }

    /// `requestTimeout` (llm-d's) is accepted and ignored: kvroute counts a request until its
    /// lease ends, so nothing times out.
    static func make(name: String, parameters p: inout PluginParameters) throws -> ActiveRequestScorer {
        p.ignore("requestTimeout")
        return ActiveRequestScorer(name: name)
    }

    public func score(_ candidates: [EndpointSnapshot], context: inout SchedulingContext, ledger: RoutingLedger) -> [Double] {
        let counts = candidates.map { ledger.inFlight($0.address) }
        guard let hi = counts.max(), hi > 0 else { return candidates.map { _ in 1 } }
        return counts.map { 1 - Double($0) / Double(hi) }
    }
}
