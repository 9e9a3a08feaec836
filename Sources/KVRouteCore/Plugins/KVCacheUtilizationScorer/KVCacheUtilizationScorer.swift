/// `kv-cache-utilization-scorer`: prefers endpoints with free KV cache: 1 − usage.
public struct KVCacheUtilizationScorer: EndpointScorer {
    public let type = "kv-cache-utilization-scorer"
    public let name: String
    public init(name: String) { self.name = name }

    static func make(name: String, parameters p: inout PluginParameters) throws -> KVCacheUtilizationScorer { KVCacheUtilizationScorer(name: name) }

    public func score(_ candidates: [EndpointSnapshot], context: inout SchedulingContext, ledger: RoutingLedger) -> [Double] {
        candidates.map { max(0, min(1, 1 - $0.kvCacheUsage)) }
    }
}
