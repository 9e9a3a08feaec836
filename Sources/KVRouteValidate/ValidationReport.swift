import Foundation

/// The outcome of a validation run, as printed and as written with `--json`.
public struct ValidationReport: Sendable, Codable {
    public struct Percentiles: Sendable, Codable {
        public var p50: Double?
        public var p90: Double?
        public var p99: Double?
        public var first3: Double?
        public var last3: Double?
    }

    public struct Engine: Sendable, Codable {
        public var address: String
        public var name: String?
        public var queryDelta: Double
        public var hitDelta: Double
        public var requests: Int
        enum CodingKeys: String, CodingKey {
            case address, name, requests
            case queryDelta = "query_delta", hitDelta = "hit_delta"
        }
    }

    public struct Session: Sendable, Codable {
        public var id: String
        public var requests: Int
        public var stickiness: Double
        public var topUpstream: String?
        enum CodingKeys: String, CodingKey {
            case id, requests, stickiness
            case topUpstream = "top_upstream"
        }
    }

    public var gatewayURL: String
    public var model: String
    public var deltaHitRate: Double?
    public var overallHitRate: Double?
    public var stickinessHeader: Double?
    public var stickinessMetrics: Double?
    public var requests: Int
    public var errors: Int
    public var ttftMs: Percentiles
    public var totalMs: Percentiles
    public var ttftImprovement: Double?
    public var perEngine: [Engine]
    public var sessions: [Session]
    public var metricsSource: String
    public var grade: String
    public var passed: Bool
    public var failures: [String]
    public var warnings: [String]
    public var settings: [String: String]

    enum CodingKeys: String, CodingKey {
        case model, requests, errors, sessions, grade, passed, failures, warnings, settings
        case gatewayURL = "gateway_url", deltaHitRate = "delta_hit_rate", overallHitRate = "overall_hit_rate"
        case stickinessHeader = "stickiness_header", stickinessMetrics = "stickiness_metrics"
        case ttftMs = "ttft_ms", totalMs = "total_ms", ttftImprovement = "ttft_improvement"
        case perEngine = "per_engine", metricsSource = "metrics_source"
    }

    public static func grade(_ hitRate: Double?) -> String {
        guard let h = hitRate else { return "NO DATA" }
        switch h {
        case 0.8...: return "EXCELLENT"
        case 0.6..<0.8: return "VERY GOOD"
        case 0.4..<0.6: return "GOOD"
        default: return "POOR"
        }
    }

    public func json() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try e.encode(self)
    }

    public static func pct(_ v: Double?) -> String { v.map { String(format: "%.1f%%", $0 * 100) } ?? "n/a" }
    public static func ms(_ v: Double?) -> String { v.map { String(format: "%.1f ms", $0) } ?? "n/a" }

    /// The human report: aligned, plain text, readable in a terminal and a CI log.
    public func renderTable() -> String {
        var out: [String] = []
        out.append("Results (\(metricsSource))")
        let rows: [(String, String)] = [
            ("Delta hit rate", Self.pct(deltaHitRate) + "  [\(grade)]"),
            ("Overall hit rate", Self.pct(overallHitRate)),
            ("Stickiness (x-upstream-host)", Self.pct(stickinessHeader)),
            ("Stickiness (engine metrics)", Self.pct(stickinessMetrics)),
            ("Requests / errors", "\(requests) / \(errors)"),
            ("TTFT p50 / p90 / p99", "\(Self.ms(ttftMs.p50)) / \(Self.ms(ttftMs.p90)) / \(Self.ms(ttftMs.p99))"),
            ("TTFT first 3 → last 3", "\(Self.ms(ttftMs.first3)) → \(Self.ms(ttftMs.last3))" + (ttftImprovement.map { $0 >= 0 ? String(format: "  (%.0f%% faster)", $0 * 100) : String(format: "  (%.0f%% slower)", -$0 * 100) } ?? "")),
            ("Total time p50", Self.ms(totalMs.p50)),
        ]
        let w = rows.map { $0.0.count }.max() ?? 0
        for (k, v) in rows { out.append("  " + k.padding(toLength: w, withPad: " ", startingAt: 0) + "  " + v) }
        if !perEngine.isEmpty {
            out.append("  Per engine:")
            let aw = perEngine.map { ($0.name ?? $0.address).count }.max() ?? 0
            for e in perEngine {
                let rate = e.queryDelta > 0 ? String(format: "%5.1f%%", 100 * e.hitDelta / e.queryDelta) : "    - "
                out.append("    " + (e.name ?? e.address).padding(toLength: aw, withPad: " ", startingAt: 0)
                           + String(format: "  Δqueries %8.0f  Δhits %8.0f  hit %@  requests %d", e.queryDelta, e.hitDelta, rate, e.requests))
            }
        }
        if sessions.count > 1 {
            out.append("  Per session:")
            for s in sessions { out.append("    \(s.id)  \(s.requests) requests  stickiness \(Self.pct(s.stickiness))  on \(s.topUpstream ?? "?")") }
        }
        for w in warnings { out.append("  warning: \(w)") }
        out.append(passed ? "PASS" : "FAIL: " + failures.joined(separator: "; "))
        return out.joined(separator: "\n")
    }
}

extension ValidationReport {
    /// Computes every figure from the counters before and after and the request samples.
    static func build(settings: ValidationSettings, engines: [EngineTarget], before: Validator.Counters, after: Validator.Counters,
                      samples: [ChatSample], source: String, warnings: [String]) -> ValidationReport {
        let dq = after.queries - before.queries, dh = after.hits - before.hits
        let delta: Double? = dq > 0 ? dh / dq : nil
        let overall: Double? = after.queries > 0 ? after.hits / after.queries : nil
        let ok = samples.filter { $0.error == nil }
        var hosts: [String: Int] = [:]
        for s in ok { if let u = s.upstream { hosts[u, default: 0] += 1 } }
        var perEngine: [Engine] = []
        var engineDeltas: [Double] = []
        for e in engines {
            let b = before.perEngine[e.address] ?? (0, 0), a = after.perEngine[e.address] ?? (0, 0)
            let served = hosts[e.address] ?? hosts[e.name ?? "\u{0}"] ?? 0
            perEngine.append(Engine(address: e.address, name: e.name, queryDelta: a.queries - b.queries, hitDelta: a.hits - b.hits, requests: served))
            engineDeltas.append(a.queries - b.queries)
        }
        let totalDelta = engineDeltas.reduce(0, +)
        let stickinessMetrics: Double? = totalDelta > 0 ? (engineDeltas.max() ?? 0) / totalDelta : nil
        // Header stickiness: per session, the top upstream's share; averaged over sessions.
        var sessionReports: [Session] = []
        for id in settings.sessionIDs {
            let mine = ok.filter { $0.session == id }
            var counts: [String: Int] = [:]
            for s in mine { counts[s.upstream ?? "?", default: 0] += 1 }
            let top = counts.max { $0.value < $1.value }
            sessionReports.append(Session(id: id, requests: mine.count, stickiness: mine.isEmpty ? 0 : Double(top?.value ?? 0) / Double(mine.count), topUpstream: top?.key))
        }
        let withHeader = ok.filter { $0.upstream != nil }
        let stickinessHeader: Double? = withHeader.isEmpty ? nil : sessionReports.map(\.stickiness).reduce(0, +) / Double(sessionReports.count)

        let ttfts = ok.compactMap { $0.ttft.map { $0 * 1000 } }
        let ordered = samples.filter { $0.error == nil && $0.ttft != nil }.map { $0.ttft! * 1000 }
        func mean(_ v: ArraySlice<Double>) -> Double? { v.isEmpty ? nil : v.reduce(0, +) / Double(v.count) }
        let first3 = mean(ordered.prefix(3)), last3 = mean(ordered.suffix(3))
        let sortedT = ttfts.sorted(), sortedTotal = ok.map { $0.total * 1000 }.sorted()
        func p(_ v: [Double], _ q: Double) -> Double? {
            v.isEmpty ? nil : v[min(v.count - 1, max(0, Int((q * Double(v.count)).rounded(.up)) - 1))]
        }
        var failures: [String] = []
        if dq <= 0 { failures.append("no prefix-cache queries were seen during the measured loop") }
        if let m = settings.minHitRate, (delta ?? 0) < m {
            failures.append(String(format: "delta hit rate %@ is below the minimum %.1f%%", Self.pct(delta), m * 100))
        }
        if let m = settings.minStickiness {
            let s = stickinessHeader ?? stickinessMetrics ?? 0
            if s < m { failures.append(String(format: "stickiness %@ is below the minimum %.1f%%", Self.pct(s), m * 100)) }
        }
        let errors = samples.count - ok.count
        if errors > 0 { failures.append("\(errors) request(s) failed: \(samples.first { $0.error != nil }?.error ?? "")") }
        var settingsMap: [String: String] = [
            "requests": "\(settings.requests)", "warmup_count": "\(settings.warmupCount)", "sleep_seconds": "\(settings.sleepSeconds)",
            "max_tokens": "\(settings.maxTokens)", "sessions": "\(settings.sessions)", "session_id": settings.sessionID,
            "reset": "\(settings.reset)", "block_size": "\(settings.blockSize)",
        ]
        if let h = settings.host { settingsMap["host"] = h }
        return ValidationReport(
            gatewayURL: settings.gatewayURL, model: settings.model, deltaHitRate: delta, overallHitRate: overall,
            stickinessHeader: stickinessHeader, stickinessMetrics: stickinessMetrics, requests: samples.count, errors: errors,
            ttftMs: Percentiles(p50: p(sortedT, 0.5), p90: p(sortedT, 0.9), p99: p(sortedT, 0.99), first3: first3, last3: last3),
            totalMs: Percentiles(p50: p(sortedTotal, 0.5), p90: p(sortedTotal, 0.9), p99: p(sortedTotal, 0.99), first3: nil, last3: nil),
            ttftImprovement: (first3 != nil && last3 != nil && first3! > 0) ? (first3! - last3!) / first3! : nil,
            perEngine: perEngine, sessions: sessionReports, metricsSource: source, grade: grade(delta), passed: failures.isEmpty,
            failures: failures, warnings: warnings, settings: settingsMap)
    }
}
