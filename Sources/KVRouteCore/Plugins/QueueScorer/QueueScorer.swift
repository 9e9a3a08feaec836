/// `queue-scorer`: prefers short waiting queues. Min-max normalised over the candidates:
/// the shortest queue scores 1, the longest 0, all equal → 1.
public struct QueueScorer: EndpointScorer {
    public let type = "queue-scorer"
    public let name: String
    public init(name: String) { self.name = name }

    static func make(name: String, parameters p: inout PluginParameters) throws -> QueueScorer { QueueScorer(name: name) }

    public func score(_ candidates: [EndpointSnapshot], context: inout SchedulingContext, ledger: RoutingLedger) -> [Double] {
        let q = candidates.map(\.waitingRequests)
        guard let lo = q.min(), let hi = q.max(), hi > lo else { return candidates.map { _ in 1 } }
        return q.map { Double(hi - $0) / Double(hi - lo) }
    }
}
