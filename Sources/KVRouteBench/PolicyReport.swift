import Foundation
import KVRouteStats

/// The figures of one policy at one load, as the report prints them and the JSON holds
/// them. Figures a run did not measure are nil (JSON null, "n/a" in the table).
public struct PolicyReport: Sendable, Codable {
    public var policy: String
    /// Fraction of the cluster's measured capacity the run offered; nil: the workload's own rate.
    public var load: Double?
    /// Requests per second the run offered (requests over the arrival span).
    public var offeredRequestsPerS: Double
    public var hitRate: Double
    public var ttftP50Ms: Double
    public var ttftP90Ms: Double
    public var ttftP99Ms: Double
    /// The TTFT objective goodput is counted against.
    public var ttftSLOMs: Double
    /// Requests per second answered with a TTFT within the objective.
    public var goodputRequestsPerS: Double
    /// Share of all requests (failed ones included) answered within the objective.
    public var sloAttainment: Double
    public var throughputTokensPerS: Double
    public var loadMaxOverMean: Double
    public var loadCV: Double
    public var requestsPerEngine: [Int]
    public var preemptions: Int?
    public var decisionUsP50: Double?
    public var decisionUsP99: Double?
    public var requests: Int
    public var rejected: Int
    /// Attempts that failed and went again to another engine.
    public var errors: Int
    /// The hit rate of one engine with unlimited cache on this policy's own request stream.
    public var upperBoundHitRate: Double
    /// One LRU cache as large as the cluster's on the same stream (a reference, not a bound:
    /// LRU is not the best eviction).
    public var clusterCapacityHitRate: Double
    /// "unlimited" when the cluster's caches hold everything the stream reuses, so the upper
    /// bound applies; "capacity" when they do not and the cluster-capacity reference applies.
    public var boundKind: String
    /// Sorted TTFTs in ms, for the CDF chart (not in the JSON).
    public var ttftsMs: [Double] = []

    /// The bound this row is measured against (see ``boundKind``).
    public var bound: Double { boundKind == "capacity" ? clusterCapacityHitRate : upperBoundHitRate }

    enum CodingKeys: String, CodingKey {
        case policy, load, requests, rejected, errors, preemptions
        case offeredRequestsPerS = "offered_requests_per_s"
        case hitRate = "hit_rate", ttftP50Ms = "ttft_p50_ms", ttftP90Ms = "ttft_p90_ms", ttftP99Ms = "ttft_p99_ms"
        case ttftSLOMs = "ttft_slo_ms", goodputRequestsPerS = "goodput_requests_per_s", sloAttainment = "slo_attainment"
        case throughputTokensPerS = "throughput_tokens_per_s", loadMaxOverMean = "load_max_over_mean", loadCV = "load_cv"
        case requestsPerEngine = "requests_per_engine", decisionUsP50 = "decision_us_p50", decisionUsP99 = "decision_us_p99"
        case upperBoundHitRate = "upper_bound_hit_rate", clusterCapacityHitRate = "cluster_capacity_hit_rate", boundKind = "bound_kind"
    }

    /// The figures of a run. `clusterBlocks` sizes the cluster-capacity reference (nil: not
    /// computed, the upper bound applies).
    public init(run: PolicyRun, load: Double? = nil, ttftSLOMs: Double = BenchDefaults.ttftSLOMs, blockSize: Int = 16, clusterBlocks: Int? = nil) {
        let o = run.outcomes
        policy = run.policy
        self.load = load
        requests = o.count
        rejected = run.rejected
        errors = run.errors
        let prompt = o.reduce(0) { $0 + $1.promptTokens }
        hitRate = prompt == 0 ? 0 : Double(o.reduce(0) { $0 + $1.cachedTokens }) / Double(prompt)
        ttftsMs = o.map { $0.ttft * 1000 }.sorted()
        ttftP50Ms = Stats.percentile(ttftsMs, 0.50)
        ttftP90Ms = Stats.percentile(ttftsMs, 0.90)
        ttftP99Ms = Stats.percentile(ttftsMs, 0.99)
        let start = o.map(\.arrival).min() ?? 0, end = o.map(\.finish).max() ?? 0
        let lastArrival = o.map(\.arrival).max() ?? 0
        offeredRequestsPerS = lastArrival > start ? Double(o.count + run.rejected) / (lastArrival - start) : 0
        let tokens = o.reduce(0) { $0 + $1.promptTokens + $1.completionTokens }
        throughputTokensPerS = end > start ? Double(tokens) / (end - start) : 0
        self.ttftSLOMs = ttftSLOMs
        let good = ttftsMs.prefix { $0 <= ttftSLOMs }.count
        goodputRequestsPerS = end > start ? Double(good) / (end - start) : 0
        sloAttainment = o.count + run.rejected == 0 ? 0 : Double(good) / Double(o.count + run.rejected)
        var perEngine = [Int](repeating: 0, count: run.engines)
        for x in o { if let e = x.engine, e < perEngine.count { perEngine[e] += 1 } }
        if let counted = run.requestsPerEngine { perEngine = counted }
        requestsPerEngine = perEngine
        loadMaxOverMean = Stats.maxOverMean(perEngine.map(Double.init))
        loadCV = Stats.coefficientOfVariation(perEngine.map(Double.init))
        let preempt = o.compactMap(\.preemptions)
        preemptions = preempt.count == o.count && !o.isEmpty ? preempt.reduce(0, +) : nil
        let decisions = o.compactMap { $0.decisionSeconds.map { $0 * 1e6 } }.sorted()
        decisionUsP50 = decisions.isEmpty ? nil : Stats.percentile(decisions, 0.50)
        decisionUsP99 = decisions.isEmpty ? nil : Stats.percentile(decisions, 0.99)
        upperBoundHitRate = Bounds.upperBound(run.issued, blockSize: blockSize)
        if let clusterBlocks {
            clusterCapacityHitRate = Bounds.clusterCapacity(run.issued, blockSize: blockSize, capacity: clusterBlocks)
        } else {
            clusterCapacityHitRate = upperBoundHitRate
        }
        // Capacity binds when a cache the size of the cluster's loses hits the unlimited one keeps.
        boundKind = clusterCapacityHitRate < upperBoundHitRate - 0.0005 ? "capacity" : "unlimited"
    }
}

/// The arithmetic of the report, on its own so it can be checked by hand.
public enum Stats {
    /// Nearest-rank percentile of values (p in 0…1), by ``Percentiles``; 0 when empty.
    public static func percentile(_ values: [Double], _ p: Double) -> Double {
        Percentiles(values).value(at: p) ?? 0
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
