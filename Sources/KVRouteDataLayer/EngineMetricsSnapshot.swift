/// What the router reads from one engine's `/metrics` page (vLLM names), summed over the
/// page's series (several models or data-parallel engines behind one address).
///
/// An engine is not trusted: every sample the router reads is checked on its own (a `NaN`
/// queue, an infinite counter, a usage of 7, a megabyte model name) and a bad one is left out
/// and counted in ``rejected`` while the rest of the page still counts. What is kept is
/// bounded: counts saturate at ``maxRequestCount``, usage stays in 0…1, counters below 2^63.
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
    /// Samples left out, by reason.
    public var rejected: [EngineSampleRejection: Int] = [:]

    /// Largest request count (waiting or running) taken from one page; sums saturate here.
    public static let maxRequestCount = 1 << 32
    /// Counters at or past 2^63 are not believed.
    public static let maxCounter = 0x1p63
    /// Model names kept from one page; later ones are rejected.
    public static let maxModelNames = 32
    /// Longest model name kept, in UTF-8 bytes.
    public static let maxModelNameBytes = 256
    public static let blockSizeRange = 1...(1 << 16)
    public static let numGPUBlocksRange = 1...(1 << 40)

    public init() {}

    /// Parses a vLLM `/metrics` page. Accepts the deprecated `gpu_cache_usage_perc` and the
    /// older `gpu_prefix_cache_*` names when the current ones are absent.
    public static func parse(_ text: String) -> EngineMetricsSnapshot {
        var s = EngineMetricsSnapshot()
        var usage: Double?, oldUsage: Double?
        var queries: Double?, hits: Double?, oldQueries: Double?, oldHits: Double?
        var usageCount = 0, oldUsageCount = 0
        // Only the series the router reads get their labels parsed.
        for sample in PrometheusText.parse(text[...], filter: { Kind($0) != nil }) {
            guard let kind = Kind(sample.name) else { continue }
            if let reason = s.admit(sample, kind) {
                s.rejected[reason, default: 0] += 1
                continue
            }
            let v = sample.value
            switch sample.name {
            case "vllm:num_requests_waiting": s.waiting = min(s.waiting + Int(v), maxRequestCount)
            case "vllm:num_requests_running": s.running = min(s.running + Int(v), maxRequestCount)
            case "vllm:kv_cache_usage_perc": usage = (usage ?? 0) + v; usageCount += 1
            case "vllm:gpu_cache_usage_perc": oldUsage = (oldUsage ?? 0) + v; oldUsageCount += 1
            case "vllm:prefix_cache_queries_total":
                queries = (queries ?? 0) + v
                s.hasPrefixQueriesSeries = true
            case "vllm:prefix_cache_hits_total": hits = (hits ?? 0) + v
            case "vllm:gpu_prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries":
                oldQueries = (oldQueries ?? 0) + v
                s.hasPrefixQueriesSeries = true
            case "vllm:gpu_prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits": oldHits = (oldHits ?? 0) + v
            case "vllm:cache_config_info":
                if let b = sample.labels["block_size"].flatMap({ Int($0) }) { s.blockSize = b }
                if let n = sample.labels["num_gpu_blocks"].flatMap({ Int($0) }) { s.numGPUBlocks = n }
                if let e = sample.labels["enable_prefix_caching"], e.lowercased() == "false" { s.prefixCachingDisabled = true }
            default: break
            }
        }
        if let u = usage { s.kvCacheUsage = u / Double(max(usageCount, 1)) } else if let u = oldUsage { s.kvCacheUsage = u / Double(max(oldUsageCount, 1)) }
        s.kvCacheUsage = min(max(s.kvCacheUsage, 0), 1)
        s.prefixQueries = min(queries ?? oldQueries ?? 0, maxCounter)
        s.prefixHits = min(hits ?? oldHits ?? 0, s.prefixQueries)
        return s
    }

    /// True when the page carried any vLLM metric at all.
    public var hasPrefixCacheMetrics: Bool { blockSize != nil || prefixQueries > 0 }

    /// How the router reads a metric, which sets the values it accepts.
    enum Kind {
        /// A request count: a whole, non-negative number below ``maxRequestCount``.
        case count
        /// A fraction in 0…1.
        case fraction
        /// A monotonic counter: non-negative, below 2^63.
        case counter
        /// An info metric: only its labels are read.
        case info

        init?(_ name: Substring) {
            switch name {
            case "vllm:num_requests_waiting", "vllm:num_requests_running": self = .count
            case "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc": self = .fraction
            case "vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total",
                 "vllm:gpu_prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries",
                 "vllm:gpu_prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits": self = .counter
            case "vllm:cache_config_info": self = .info
            default: return nil
            }
        }
    }

    /// Checks one sample the router reads and records its model name; the reason it is left
    /// out otherwise.
    mutating func admit(_ sample: PrometheusSample, _ kind: Kind) -> EngineSampleRejection? {
        if let reason = Self.check(sample, kind) { return reason }
        if let m = sample.labels["model_name"], !modelNames.contains(String(m)) {
            guard Self.isAcceptableModelName(m), modelNames.count < Self.maxModelNames else { return .badLabel }
            modelNames.insert(String(m))
        }
        return nil
    }

    static func check(_ sample: PrometheusSample, _ kind: Kind) -> EngineSampleRejection? {
        let v = sample.value
        if kind == .info {
            if let b = sample.labels["block_size"], !(Int(b).map(blockSizeRange.contains) ?? false) { return .badLabel }
            if let n = sample.labels["num_gpu_blocks"], !(Int(n).map(numGPUBlocksRange.contains) ?? false) { return .badLabel }
            return nil
        }
        if v.isNaN { return .notANumber }
        if v.isInfinite { return .infinite }
        if v < 0 { return .negative }
        switch kind {
        case .count: return v < Double(maxRequestCount) ? nil : .outOfRange
        case .fraction: return v <= 1 ? nil : .outOfRange
        case .counter: return v < maxCounter ? nil : .outOfRange
        case .info: return nil
        }
    }

    /// A model name fit to become a metric label: short, printable, no quote or backslash
    /// (label values are read as written, unescaped).
    static func isAcceptableModelName(_ m: Substring) -> Bool {
        !m.isEmpty && m.utf8.count <= maxModelNameBytes
            && m.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7F && $0 != "\"" && $0 != "\\" && $0 != "\u{FFFD}" }
    }
}
