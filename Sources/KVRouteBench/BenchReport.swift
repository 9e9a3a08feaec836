import Foundation

/// A whole comparison of one scenario: the workload, the cluster, the capacity it was
/// measured to sustain, and every policy's figures at every load.
public struct BenchReport: Sendable, Codable {
    public var workload: String
    /// The real traffic the workload models.
    public var models: String
    public var mode: String
    public var engines: Int
    public var numGPUBlocks: Int
    public var maxNumSeqs: Int
    public var blockSize: Int
    public var settings: [String: String]
    public var ttftSLOMs: Double
    /// The capacity search behind the load levels; nil when the run used the workload's own rate.
    public var capacity: CapacitySearch.Result?
    /// The highest per-policy upper bound (each row also has its own).
    public var upperBoundHitRate: Double
    public var clusterCapacityHitRate: Double
    public var results: [PolicyReport]
    public var wallSeconds: Double

    public init(workload: String, models: String = "", mode: String, engines: Int, numGPUBlocks: Int, maxNumSeqs: Int, blockSize: Int,
                settings: [String: String], ttftSLOMs: Double, capacity: CapacitySearch.Result?, results: [PolicyReport], wallSeconds: Double) {
        self.workload = workload
        self.models = models
        self.mode = mode
        self.engines = engines
        self.numGPUBlocks = numGPUBlocks
        self.maxNumSeqs = maxNumSeqs
        self.blockSize = blockSize
        self.settings = settings
        self.ttftSLOMs = ttftSLOMs
        self.capacity = capacity
        self.upperBoundHitRate = results.map(\.upperBoundHitRate).max() ?? 0
        self.clusterCapacityHitRate = results.map(\.clusterCapacityHitRate).max() ?? 0
        self.results = results
        self.wallSeconds = wallSeconds
    }

    enum CodingKeys: String, CodingKey {
        case workload, models, mode, engines, settings, results, capacity
        case numGPUBlocks = "num_gpu_blocks", blockSize = "block_size", maxNumSeqs = "max_num_seqs", ttftSLOMs = "ttft_slo_ms"
        case upperBoundHitRate = "upper_bound_hit_rate", clusterCapacityHitRate = "cluster_capacity_hit_rate"
        case wallSeconds = "wall_seconds"
    }

    public func json() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(self)
    }

    /// The terminal table.
    public func table() -> String {
        var lines: [String] = []
        lines.append("workload \(workload)\(models.isEmpty ? "" : " — \(models)")")
        lines.append("cluster: \(engines) engines × \(numGPUBlocks) blocks of \(blockSize) tokens, max \(maxNumSeqs) sequences · \(mode)")
        lines.append("settings: " + settings.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        if let c = capacity {
            lines.append(String(format: "capacity (%@, %d probes): %.2f req/s = %.3g × the nominal rate; light-load TTFT p90 %@",
                                c.referencePolicy, c.probes.count, c.requestsPerS, c.rateScale, Self.ms(c.lightLoadTTFTP90Ms)))
        }
        lines.append("bound: \"unlimited\" = one engine with unlimited cache on the row's own requests; \"capacity\" = one LRU cache of the cluster's size (it binds). goodput: TTFT ≤ \(Self.ms(ttftSLOMs))")
        let hasLoad = results.contains { $0.load != nil }
        let header = (hasLoad ? ["load", "req/s"] : []) + ["policy", "hit rate", "bound", "of bound", "TTFT p50", "p99", "goodput", "in SLO", "errors", "max/mean", "preempt", "decide p50"]
        var rows: [[String]] = [header]
        for r in results {
            let lead = hasLoad ? [r.load.map { String(format: "%.2f", $0) } ?? "-", String(format: "%.1f", r.offeredRequestsPerS)] : []
            rows.append(lead + [
                r.policy, String(format: "%.1f%%", r.hitRate * 100),
                String(format: "%.1f%% %@", r.bound * 100, r.boundKind),
                r.bound > 0 ? String(format: "%.0f%%", 100 * r.hitRate / r.bound) : "-",
                Self.ms(r.ttftP50Ms), Self.ms(r.ttftP99Ms),
                String(format: "%.2f/s", r.goodputRequestsPerS), String(format: "%.0f%%", r.sloAttainment * 100),
                "\(r.errors + r.rejected)", String(format: "%.2f", r.loadMaxOverMean),
                r.preemptions.map { "\($0)" } ?? "n/a", r.decisionUsP50.map { String(format: "%.1fµs", $0) } ?? "n/a",
            ])
        }
        let widths = header.indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
        let policyColumn = hasLoad ? 2 : 0
        for (i, row) in rows.enumerated() {
            if i > 1, hasLoad, row[0] != rows[i - 1][0] { lines.append("") }
            lines.append(row.enumerated().map { c, v in c == policyColumn ? v.padding(toLength: widths[c], withPad: " ", startingAt: 0) : String(repeating: " ", count: widths[c] - v.count) + v }.joined(separator: "  "))
            if i == 0 { lines.append(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
        }
        lines.append(String(format: mode == "live" ? "ran in %.1f s" : "simulated in %.1f s of wall time", wallSeconds))
        return lines.joined(separator: "\n")
    }

    static func ms(_ v: Double) -> String { v >= 1000 ? String(format: "%.2fs", v / 1000) : String(format: "%.0fms", v) }
}

/// Everything one `kvroute bench` invocation produced, with what is needed to compare runs:
/// the kvroute version and the bench's settings.
public struct BenchRun: Sendable, Codable {
    public var kvrouteVersion: String
    public var settings: [String: String]
    public var reports: [BenchReport]

    public init(settings: [String: String], reports: [BenchReport]) {
        self.kvrouteVersion = KVRouteVersion.current
        self.settings = settings
        self.reports = reports
    }

    enum CodingKeys: String, CodingKey {
        case settings, reports
        case kvrouteVersion = "kvroute_version"
    }

    public func json() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(self)
    }
}
