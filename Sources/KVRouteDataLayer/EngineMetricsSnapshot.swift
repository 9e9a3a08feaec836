/// What the router reads from one engine's `/metrics` page (vLLM names), summed over the
/// page's series (several models or data-parallel engines behind one address).
public struct EngineMetricsSnapshot: Sendable, Hashable {
    public var waiting: Int = 0
    public var running: Int = 0
    public var kvCacheUsage: Double = 0
    public var prefixQueries: Double = 0
    public var prefixHits: Double = 0
    public var blockSize: Int?
    public var numGPUBlocks: Int?
    public var modelNames: Set<String> = []
    /// `enable_prefix_caching="False"` in `vllm:cache_config_info`.
    public var prefixCachingDisabled = false
    /// The page has a prefix-cache queries series at all (even at 0).
    public var hasPrefixQueriesSeries = false

    public init() {}

    /// Parses a vLLM `/metrics` page. Accepts the deprecated `gpu_cache_usage_perc` and the
    /// older `gpu_prefix_cache_*` names when the current ones are absent.
    public static func parse(_ text: String) -> EngineMetricsSnapshot {
        var s = EngineMetricsSnapshot()
        var usage: Double?, oldUsage: Double?
        var queries: Double?, hits: Double?, oldQueries: Double?, oldHits: Double?
        var usageCount = 0, oldUsageCount = 0
        for sample in PrometheusText.parse(text[...], filter: { $0.hasPrefix("vllm:") }) {
            if let m = sample.labels["model_name"] { s.modelNames.insert(String(m)) }
            switch sample.name {
            case "vllm:num_requests_waiting": s.waiting += Int(sample.value)
            case "vllm:num_requests_running": s.running += Int(sample.value)
            case "vllm:kv_cache_usage_perc": usage = (usage ?? 0) + sample.value; usageCount += 1
            case "vllm:gpu_cache_usage_perc": oldUsage = (oldUsage ?? 0) + sample.value; oldUsageCount += 1
            case "vllm:prefix_cache_queries_total":
                queries = (queries ?? 0) + sample.value
                s.hasPrefixQueriesSeries = true
            case "vllm:prefix_cache_hits_total": hits = (hits ?? 0) + sample.value
            case "vllm:gpu_prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries":
                oldQueries = (oldQueries ?? 0) + sample.value
                s.hasPrefixQueriesSeries = true
            case "vllm:gpu_prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits": oldHits = (oldHits ?? 0) + sample.value
            case "vllm:cache_config_info":
                if let b = sample.labels["block_size"].flatMap({ Int($0) }) { s.blockSize = b }
                if let n = sample.labels["num_gpu_blocks"].flatMap({ Int($0) }) { s.numGPUBlocks = n }
                if let e = sample.labels["enable_prefix_caching"], e.lowercased() == "false" { s.prefixCachingDisabled = true }
            default: break
            }
        }
        if let u = usage { s.kvCacheUsage = u / Double(max(usageCount, 1)) } else if let u = oldUsage { s.kvCacheUsage = u / Double(max(oldUsageCount, 1)) }
        s.prefixQueries = queries ?? oldQueries ?? 0
        s.prefixHits = hits ?? oldHits ?? 0
        return s
    }

    /// True when the page carried any vLLM metric at all.
    public var hasPrefixCacheMetrics: Bool { blockSize != nil || prefixQueries > 0 }
}
