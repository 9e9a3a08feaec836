/// `vllm:prefix_cache_queries_total` and `vllm:prefix_cache_hits_total` (tokens) at one
/// moment: summed over the engines, and per engine address.
struct CacheCounters: Sendable {
    struct Engine: Sendable {
        var queries: Double
        var hits: Double
    }

    var queries: Double
    var hits: Double
    var perEngine: [String: Engine]

    init(perEngine: [String: Engine]) {
        self.perEngine = perEngine
        queries = perEngine.values.reduce(0) { $0 + $1.queries }
        hits = perEngine.values.reduce(0) { $0 + $1.hits }
    }

    init(queries: Double, hits: Double, perEngine: [String: Engine]) {
        self.queries = queries
        self.hits = hits
        self.perEngine = perEngine
    }
}
