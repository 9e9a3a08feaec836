/// Counters kept by the engine model itself, readable without Prometheus (the benchmark
/// harness reads these in virtual time).
public struct EngineStats: Sendable, Hashable {
    /// Prompt tokens looked up in the prefix cache (vLLM `prefix_cache_queries`).
    public var prefixQueries: Int = 0
    /// Prompt tokens found there (vLLM `prefix_cache_hits`).
    public var prefixHits: Int = 0
    public var promptTokens: Int = 0
    public var generationTokens: Int = 0
    public var preemptions: Int = 0
    public var finishedRequests: Int = 0
    public var abortedRequests: Int = 0
    public var steps: Int = 0
    public var busyTime: Double = 0

    public init() {}

    public var hitRate: Double { prefixQueries == 0 ? 0 : Double(prefixHits) / Double(prefixQueries) }
}
