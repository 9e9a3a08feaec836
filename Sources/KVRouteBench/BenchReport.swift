import Foundation

/// A whole comparison: the workload, the cluster, the bounds and every policy's figures.
public struct BenchReport: Sendable, Codable {
    public var workload: String
    public var mode: String
    public var engines: Int
    public var numGPUBlocks: Int
    public var blockSize: Int
    public var settings: [String: String]
    public var upperBoundHitRate: Double
    public var clusterCapacityHitRate: Double
    public var results: [PolicyReport]
    public var wallSeconds: Double

    public init(workload: String, mode: String, engines: Int, numGPUBlocks: Int, blockSize: Int, settings: [String: String],
                upperBoundHitRate: Double, clusterCapacityHitRate: Double, results: [PolicyReport], wallSeconds: Double) {
        self.workload = workload
        self.mode = mode
        self.engines = engines
        self.numGPUBlocks = numGPUBlocks
        self.blockSize = blockSize
        self.settings = settings
        self.upperBoundHitRate = upperBoundHitRate
        self.clusterCapacityHitRate = clusterCapacityHitRate
        self.results = results
        self.wallSeconds = wallSeconds
    }

    enum CodingKeys: String, CodingKey {
        case workload, mode, engines, settings, results
        case numGPUBlocks = "num_gpu_blocks", blockSize = "block_size"
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
        lines.append("workload \(workload) · \(engines) engines × \(numGPUBlocks) blocks of \(blockSize) tokens · \(mode)")
        lines.append("settings: " + settings.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        lines.append(String(format: "upper bound (one engine, unlimited cache): %.1f%%   cluster-capacity bound: %.1f%%", upperBoundHitRate * 100, clusterCapacityHitRate * 100))
        let header = ["policy", "hit rate", "of bound", "TTFT p50", "p90", "p99", "tok/s", "max/mean", "CV", "preempt", "decide p50", "p99"]
        var rows: [[String]] = [header]
        for r in results {
            rows.append([
                r.policy, String(format: "%.1f%%", r.hitRate * 100),
                upperBoundHitRate > 0 ? String(format: "%.0f%%", 100 * r.hitRate / upperBoundHitRate) : "-",
                Self.ms(r.ttftP50Ms), Self.ms(r.ttftP90Ms), Self.ms(r.ttftP99Ms),
                String(format: "%.0f", r.throughputTokensPerS), String(format: "%.2f", r.loadMaxOverMean), String(format: "%.2f", r.loadCV),
                "\(r.preemptions)", String(format: "%.1fµs", r.decisionUsP50), String(format: "%.1fµs", r.decisionUsP99),
            ])
        }
        let widths = header.indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
        for (i, row) in rows.enumerated() {
            lines.append(row.enumerated().map { c, v in c == 0 ? v.padding(toLength: widths[c], withPad: " ", startingAt: 0) : String(repeating: " ", count: widths[c] - v.count) + v }.joined(separator: "  "))
            if i == 0 { lines.append(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
        }
        lines.append(String(format: mode == "live" ? "ran in %.1f s" : "simulated in %.1f s of wall time", wallSeconds))
        return lines.joined(separator: "\n")
    }

    static func ms(_ v: Double) -> String { v >= 1000 ? String(format: "%.2fs", v / 1000) : String(format: "%.0fms", v) }
}
