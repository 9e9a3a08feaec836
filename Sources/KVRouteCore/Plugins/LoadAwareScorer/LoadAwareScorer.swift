/// `load-aware-scorer` (llm-d): an idle queue scores 0.5; a waiting queue lowers the score
/// linearly to 0 at `threshold` waiting requests (default 128), so load only ever pushes
/// an endpoint down.
public struct LoadAwareScorer: EndpointScorer {
    public let type = "load-aware-scorer"
    public let name: String
    public let threshold: Int
    public init(name: String, threshold: Int = 128) {
        self.name = name
        self.threshold = max(1, threshold)
    }

    static func make(name: String, parameters p: inout PluginParameters) throws -> LoadAwareScorer {
        LoadAwareScorer(name: name, threshold: try p.int("threshold", default: 128, min: 1))
    }

    public func score(_ candidates: [EndpointSnapshot], context: inout SchedulingContext, ledger: RoutingLedger) -> [Double] {
        candidates.map { c in
            guard c.waitingRequests > 0 else { return 0.5 }
            return 0.5 * (1 - min(Double(c.waitingRequests) / Double(threshold), 1))
        }
    }
}
