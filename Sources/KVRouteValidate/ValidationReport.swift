import Foundation

/// The outcome of a completed validation run: what `--json` writes and what
/// `renderTable()` prints. Rates and stickiness are fractions 0...1; times are milliseconds.
/// A figure that could not be measured is `nil` (JSON `null`), never a made-up 0.
/// docs/VALIDATE.md describes every field.
public struct ValidationReport: Sendable, Codable {
    /// Latency summary of the measured requests.
    public struct Latency: Sendable, Codable {
        public var p50: Double?
        public var p90: Double?
        public var p99: Double?
        /// Mean of the first three measured requests (in send order).
        public var first3: Double?
        /// Mean of the last three measured requests.
        public var last3: Double?
    }

    /// One engine's share of the measured loop.
    public struct Engine: Sendable, Codable {
        /// `ip:port`.
        public var address: String
        /// Pod name (Kubernetes), when known.
        public var name: String?
        /// Δ `vllm:prefix_cache_queries_total` (prompt tokens looked up) over the loop.
        public var queryDelta: Double
        /// Δ `vllm:prefix_cache_hits_total` (tokens found cached) over the loop.
        public var hitDelta: Double
        /// hitDelta / queryDelta; nil when the engine saw no queries.
        public var hitRate: Double?
        /// Measured requests whose upstream header named this engine.
        public var requests: Int
    }

    /// One session's stickiness from the upstream header.
    public struct Session: Sendable, Codable {
        public var id: String
        /// Measured requests that succeeded.
        public var requests: Int
        public var errors: Int
        /// The top upstream's share of the session's requests; nil without an upstream header.
        public var stickiness: Double?
        public var topUpstream: String?
    }

    /// The settings the run used.
    public struct Settings: Sendable, Codable {
        public var host: String?
        public var warmupCount: Int
        public var requests: Int
        public var sleepSeconds: Double
        public var maxTokens: Int
        public var sessionID: String
        public var sessions: Int
        public var distinctPrompts: Bool
        public var promptCharacters: Int
        public var reset: Bool
        public var blockSize: Int
        public var minHitRate: Double?
        public var minStickiness: Double?
        public var metricsURLs: [String]
        public var prometheusURL: String?
        public var namespace: String?
        public var selector: String?
    }

    public var gatewayURL: String
    public var model: String
    /// Δhits / Δqueries over the measured loop, summed over engines.
    public var deltaHitRate: Double?
    /// hits / queries in total at the end (since the engines started or were restarted).
    public var overallHitRate: Double?
    /// Σ cached_tokens / Σ prompt_tokens from the responses' `usage`, when the engines report it.
    public var usageHitRate: Double?
    /// Mean over sessions of the top upstream's share of the session's requests.
    public var stickinessHeader: Double?
    /// The busiest engine's share of Δqueries.
    public var stickinessMetrics: Double?
    /// Measured requests sent, and how many of them failed.
    public var requests: Int
    public var errors: Int
    public var ttftMs: Latency
    public var totalMs: Latency
    /// (first3 − last3) / first3 of TTFT: how much faster requests got once cached.
    public var ttftImprovement: Double?
    public var perEngine: [Engine]
    public var sessions: [Session]
    /// `EXCELLENT` (≥ 80 %), `VERY GOOD` (≥ 60 %), `GOOD` (≥ 40 %), `POOR`, or `NO DATA`.
    public var grade: String
    /// No failures: queries were seen, no request failed, every threshold was met.
    public var passed: Bool
    public var failures: [String]
    public var warnings: [String]
    /// Where the counters came from (`engines' /metrics`, `pods' /metrics`, `Prometheus URL`).
    public var metricsSource: String
    public var settings: Settings

    enum CodingKeys: String, CodingKey {
        case model, requests, errors, sessions, grade, passed, failures, warnings, settings
        case gatewayURL = "gateway_url", deltaHitRate = "delta_hit_rate", overallHitRate = "overall_hit_rate"
        case usageHitRate = "usage_hit_rate"
        case stickinessHeader = "stickiness_header", stickinessMetrics = "stickiness_metrics"
        case ttftMs = "ttft_ms", totalMs = "total_ms", ttftImprovement = "ttft_improvement"
        case perEngine = "per_engine", metricsSource = "metrics_source"
    }

    /// The grade of a delta hit rate, in the cache-hit validation procedure's bands: ≥ 80 %
    /// EXCELLENT, ≥ 60 % VERY GOOD, ≥ 40 % GOOD, else POOR.
    public static func grade(_ hitRate: Double?) -> String {
        guard let h = hitRate else { return "NO DATA" }
        switch h {
        case 0.8...: return "EXCELLENT"
        case 0.6..<0.8: return "VERY GOOD"
        case 0.4..<0.6: return "GOOD"
        default: return "POOR"
        }
    }

    /// The JSON report: pretty-printed, keys sorted, unmeasured figures as `null`.
    public func json() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try e.encode(self)
    }

    /// `98.1%`, or `n/a` for an unmeasured figure.
    public static func pct(_ v: Double?) -> String { v.map { String(format: "%.1f%%", $0 * 100) } ?? "n/a" }
    /// `123.4 ms`, or `n/a`.
    public static func ms(_ v: Double?) -> String { v.map { String(format: "%.1f ms", $0) } ?? "n/a" }
}

// Encoders skip nil optionals; the report writes them as null so every documented field is
// always present.
extension ValidationReport {
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(gatewayURL, forKey: .gatewayURL)
        try c.encode(model, forKey: .model)
        try c.encode(deltaHitRate, forKey: .deltaHitRate)
        try c.encode(overallHitRate, forKey: .overallHitRate)
        try c.encode(usageHitRate, forKey: .usageHitRate)
        try c.encode(stickinessHeader, forKey: .stickinessHeader)
        try c.encode(stickinessMetrics, forKey: .stickinessMetrics)
        try c.encode(requests, forKey: .requests)
        try c.encode(errors, forKey: .errors)
        try c.encode(ttftMs, forKey: .ttftMs)
        try c.encode(totalMs, forKey: .totalMs)
        try c.encode(ttftImprovement, forKey: .ttftImprovement)
        try c.encode(perEngine, forKey: .perEngine)
        try c.encode(sessions, forKey: .sessions)
        try c.encode(grade, forKey: .grade)
        try c.encode(passed, forKey: .passed)
        try c.encode(failures, forKey: .failures)
        try c.encode(warnings, forKey: .warnings)
        try c.encode(metricsSource, forKey: .metricsSource)
        try c.encode(settings, forKey: .settings)
    }
}

extension ValidationReport.Latency {
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(p50, forKey: .p50)
        try c.encode(p90, forKey: .p90)
        try c.encode(p99, forKey: .p99)
        try c.encode(first3, forKey: .first3)
        try c.encode(last3, forKey: .last3)
    }
}

extension ValidationReport.Engine {
    enum CodingKeys: String, CodingKey {
        case address, name, requests
        case queryDelta = "query_delta", hitDelta = "hit_delta", hitRate = "hit_rate"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(address, forKey: .address)
        try c.encode(name, forKey: .name)
        try c.encode(queryDelta, forKey: .queryDelta)
        try c.encode(hitDelta, forKey: .hitDelta)
        try c.encode(hitRate, forKey: .hitRate)
        try c.encode(requests, forKey: .requests)
    }
}

extension ValidationReport.Session {
    enum CodingKeys: String, CodingKey {
        case id, requests, errors, stickiness
        case topUpstream = "top_upstream"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(requests, forKey: .requests)
        try c.encode(errors, forKey: .errors)
        try c.encode(stickiness, forKey: .stickiness)
        try c.encode(topUpstream, forKey: .topUpstream)
    }
}

extension ValidationReport.Settings {
    enum CodingKeys: String, CodingKey {
        case host, requests, sessions, reset, selector, namespace
        case warmupCount = "warmup_count", sleepSeconds = "sleep_seconds", maxTokens = "max_tokens"
        case sessionID = "session_id", distinctPrompts = "distinct_prompts", promptCharacters = "prompt_characters"
        case blockSize = "block_size", minHitRate = "min_hit_rate", minStickiness = "min_stickiness"
        case metricsURLs = "metrics_urls", prometheusURL = "prometheus_url"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(host, forKey: .host)
        try c.encode(warmupCount, forKey: .warmupCount)
        try c.encode(requests, forKey: .requests)
        try c.encode(sleepSeconds, forKey: .sleepSeconds)
        try c.encode(maxTokens, forKey: .maxTokens)
        try c.encode(sessionID, forKey: .sessionID)
        try c.encode(sessions, forKey: .sessions)
        try c.encode(distinctPrompts, forKey: .distinctPrompts)
        try c.encode(promptCharacters, forKey: .promptCharacters)
        try c.encode(reset, forKey: .reset)
        try c.encode(blockSize, forKey: .blockSize)
        try c.encode(minHitRate, forKey: .minHitRate)
        try c.encode(minStickiness, forKey: .minStickiness)
        try c.encode(metricsURLs, forKey: .metricsURLs)
        try c.encode(prometheusURL, forKey: .prometheusURL)
        try c.encode(namespace, forKey: .namespace)
        try c.encode(selector, forKey: .selector)
    }
}
