import Foundation

/// The figures of one policy, as the report prints them and the JSON holds them.
public struct PolicyReport: Sendable, Codable {
    public var policy: String
    public var hitRate: Double
    public var ttftP50Ms: Double
    public var ttftP90Ms: Double
    public var ttftP99Ms: Double
    public var throughputTokensPerS: Double
    public var loadMaxOverMean: Double
    public var loadCV: Double
    public var requestsPerEngine: [Int]
    public var preemptions: Int
    public var decisionUsP50: Double
    public var decisionUsP99: Double
    public var requests: Int
    public var rejected: Int
    /// Sorted TTFTs in ms, for the CDF chart (not in the JSON).
    public var ttftsMs: [Double] = []

    enum CodingKeys: String, CodingKey {
        case policy, requests, rejected, preemptions
        case hitRate = "hit_rate", ttftP50Ms = "ttft_p50_ms", ttftP90Ms = "ttft_p90_ms", ttftP99Ms = "ttft_p99_ms"
        case throughputTokensPerS = "throughput_tokens_per_s", loadMaxOverMean = "load_max_over_mean", loadCV = "load_cv"
        case requestsPerEngine = "requests_per_engine", decisionUsP50 = "decision_us_p50", decisionUsP99 = "decision_us_p99"
    }

    public init(run: PolicyRun) {
        let o = run.outcomes
        policy = run.policy
        requests = o.count
        rejected = run.rejected
        let prompt = o.reduce(0) { $0 + $1.promptTokens }
        hitRate = prompt == 0 ? 0 : Double(o.reduce(0) { $0 + $1.cachedTokens }) / Double(prompt)
        ttftsMs = o.map { $0.ttft * 1000 }.sorted()
        ttftP50Ms = Stats.percentile(ttftsMs, 0.50)
        ttftP90Ms = Stats.percentile(ttftsMs, 0.90)
        ttftP99Ms = Stats.percentile(ttftsMs, 0.99)
        let start = o.map(\.arrival).min() ?? 0, end = o.map(\.finish).max() ?? 0
        let tokens = o.reduce(0) { $0 + $1.promptTokens + $1.completionTokens }
        throughputTokensPerS = end > start ? Double(tokens) / (end - start) : 0
        var perEngine = [Int](repeating: 0, count: run.engines)
        for x in o { perEngine[x.engine] += 1 }
        requestsPerEngine = perEngine
        loadMaxOverMean = Stats.maxOverMean(perEngine.map(Double.init))
        loadCV = Stats.coefficientOfVariation(perEngine.map(Double.init))
        preemptions = o.reduce(0) { $0 + $1.preemptions }
        let decisions = o.map { $0.decisionSeconds * 1e6 }.sorted()
        decisionUsP50 = Stats.percentile(decisions, 0.50)
        decisionUsP99 = Stats.percentile(decisions, 0.99)
    }
}

/// The arithmetic of the report, on its own so it can be checked by hand.
public enum Stats {
    /// Nearest-rank percentile of sorted values (p in 0…1); 0 when empty.
    public static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((p * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }

    public static func maxOverMean(_ v: [Double]) -> Double {
        let mean = v.reduce(0, +) / Double(max(v.count, 1))
        return mean == 0 ? 0 : (v.max() ?? 0) / mean
    }

    /// Population standard deviation over the mean.
    public static func coefficientOfVariation(_ v: [Double]) -> Double {
        guard !v.isEmpty else { return 0 }
        let mean = v.reduce(0, +) / Double(v.count)
        guard mean > 0 else { return 0 }
        let variance = v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(v.count)
        return variance.squareRoot() / mean
    }
}
