/// `kv-cache-utilization-scorer`: prefers endpoints with free KV cache: 1 − usage.
public struct KVCacheUtilizationScorer: EndpointScorer {
    public let type = "kv-cache-utilization-scorer"
    public let name: String
    public init(name: String) { self.name = name }

    public func score(_ candidates: [EndpointSnapshot], context: inout SchedulingContext) -> [Double] {
        candidates.map { max(0, min(1, 1 - $0.kvCacheUsage)) }
    }
}
