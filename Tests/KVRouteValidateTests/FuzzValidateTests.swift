import Foundation
import KVRouteDataLayer
import KVRouteTestSupport
import Testing
@testable import KVRouteValidate

/// What the validator reads from outside: engines' `/metrics` pages (through the data
/// layer's parser into counters and the report), the gateway's SSE streams, Prometheus's
/// query API JSON and threshold flags. Every input gives a value or a clear error.
@Suite("Fuzz corpus: validator inputs")
struct FuzzValidateTests {
    // MARK: Prometheus text

    static let metricNames = [
        "vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc",
        "vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_queries_total",
        "vllm:gpu_prefix_cache_hits", "vllm:cache_config_info", "vllm:", "process_cpu_seconds_total", "",
    ]
    static let sampleValues = FuzzText.numberLiterals + ["NaN", "+Inf", "-Inf", "nan", "inf", "1e309", "9.3e18", "-9.3e18", "0x1p3", "", "1,5", "٣"]

    static func labels(_ r: inout FuzzRandom) -> String {
        let pairs = (0..<r.below(5)).map { _ -> String in
            let key = r.pick(["model_name", "block_size", "num_gpu_blocks", "enable_prefix_caching", "engine", "le", FuzzText.string(&r, maxLength: 6)])
            let value = r.chance(0.5) ? r.pick(FuzzText.numberLiterals + ["False", "True", "m"]) : FuzzText.string(&r, maxLength: 20)
            return key + "=" + (r.chance(0.9) ? FuzzText.quoted(value) : value)
        }
        return "{" + pairs.joined(separator: r.pick([",", ", ", ",,"])) + (r.chance(0.9) ? "}" : "")
    }

    /// An engine's metrics page: vLLM series with odd labels and values, comments, CRLF,
    /// damage; sometimes random bytes.
    static func metricsPage(_ r: inout FuzzRandom) -> String {
        if r.chance(0.05) { return String(decoding: FuzzText.randomBytes(&r), as: UTF8.self) }
        var lines: [String] = []
        for _ in 0..<r.below(12) {
            switch r.below(6) {
            case 0: lines.append(r.pick(["# HELP x y", "# TYPE vllm:num_requests_waiting gauge", "#", "", " ", "\t"]))
            default:
                var line = r.pick(metricNames) + (r.chance(0.6) ? labels(&r) : "") + r.pick([" ", "  ", "\t", ""]) + r.pick(sampleValues)
                if r.chance(0.2) { line += " " + r.pick(["1712345678901", "-1", "x"]) }
                lines.append(line)
            }
        }
        let page = lines.joined(separator: r.chance(0.1) ? "\r\n" : "\n")
        return r.chance(0.1) ? String(decoding: FuzzText.damage(Array(page.utf8), &r), as: UTF8.self) : page
    }

    // MARK: SSE

    static let chunkSeeds: [FuzzJSON] = [
        .object([("choices", .array([.object([("delta", .object([("content", .string("hi"))]))])]))]),
        .object([("choices", .array([.object([("text", .string("x"))])]))]),
        .object([("choices", .array([])), ("usage", .object([("prompt_tokens", .number("120")), ("prompt_tokens_details", .object([("cached_tokens", .number("96"))]))]))]),
        .object([("error", .object([("message", .string("overloaded"))]))]),
    ]

    /// A gateway's stream: events (valid, damaged, odd numbers), comments, `[DONE]`, CRLF.
    static func sseStream(_ r: inout FuzzRandom) -> [UInt8] {
        var out: [UInt8] = []
        for _ in 0..<r.below(8) {
            let newline = r.chance(0.2) ? "\r\n" : "\n"
            switch r.below(8) {
            case 0: out += Array((r.pick([": keep-alive", "event: ping", "id: 1", "retry: x", "data:", "data: [DONE]"]) + newline + newline).utf8)
            case 1: out += (0..<r.length(small: 64, large: 1_024, huge: 16_384)).map { _ in UInt8(truncatingIfNeeded: r.next()) }
            default:
                var doc = r.pick(chunkSeeds)
                for _ in 0..<r.below(4) { doc = doc.mutated(&r, keys: ["choices", "delta", "content", "text", "usage", "prompt_tokens", "prompt_tokens_details", "cached_tokens", "error", "message"]) }
                let data = r.chance(0.3) ? FuzzText.damage(doc.bytes, &r) : doc.bytes
                out += Array("data: ".utf8) + data.filter { $0 != 0x0A && $0 != 0x0D } + Array((newline + newline).utf8)
            }
        }
        return out
    }

    /// The same bytes in random pieces, as a socket might deliver them.
    static func pieces(_ bytes: [UInt8], _ r: inout FuzzRandom) -> [[UInt8]] {
        var out: [[UInt8]] = [], i = 0
        while i < bytes.count {
            let n = min(bytes.count - i, 1 + r.below(r.chance(0.5) ? 4 : 200))
            out.append(Array(bytes[i..<(i + n)]))
            i += n
        }
        return out
    }

    static func events(_ pieces: [[UInt8]]) -> [String] {
        var reader = SSEReader()
        // An error's text may print a JSON object, whose key order varies between parses.
        return pieces.flatMap { reader.feed($0) }.map { "\($0.hasText) \($0.promptTokens as Any) \($0.cachedTokens as Any) \($0.error?.count as Any)" }
    }

    @Test("SSE streams: events are the same whatever the chunk boundaries; token counts are sane")
    func sseStreams() {
        let ran = Fuzz.run("sse-reader", cases: 2_000, generate: Self.sseStream) { bytes in
            var r = FuzzRandom(seed: UInt64(bytes.count))
            let whole = Self.events([bytes])
            #expect(Self.events(Self.pieces(bytes, &r)) == whole)
            var reader = SSEReader()
            for e in reader.feed(bytes) {
                #expect((e.promptTokens ?? 0) >= 0 && (e.cachedTokens ?? 0) >= 0)
            }
        }
        #expect(ran > 0)
    }

    @Test("SSE: CRLF split across chunks still ends an event")
    func sseSplitCRLF() {
        var reader = SSEReader()
        let events = reader.feed(Array("data: {\"choices\":[{\"text\":\"x\"}]}\r\n\r".utf8)) + reader.feed(Array("\n".utf8))
        #expect(events.count == 1)
        #expect(events.first?.hasText == true)
    }

    @Test("SSE: a long stream delivered byte by byte without an event boundary is read in linear time")
    func sseNoBoundary() {
        var reader = SSEReader()
        let line = Array(("data: " + String(repeating: "x", count: 400_000)).utf8)
        var events = 0
        for b in line { events += reader.feed([b]).count }
        events += reader.feed(Array("\n\n".utf8)).count
        #expect(events == 1)
    }

    // MARK: Prometheus query API

    static let replySeeds: [FuzzJSON] = [
        .object([("status", .string("success")), ("data", .object([("resultType", .string("vector")), ("result", .array([
            .object([("metric", .object([("instance", .string("10.0.0.1:8000"))])), ("value", .array([.number("1712345678.5"), .string("42")]))]),
        ]))]))]),
        .object([("status", .string("error")), ("errorType", .string("bad_data")), ("error", .string("parse error"))]),
        .object([("status", .string("success")), ("data", .object([("resultType", .string("scalar")), ("result", .array([.number("1"), .string("2")]))]))]),
    ]

    @Test("Prometheus query API replies: decoded or refused")
    func prometheusReplies() {
        let ran = Fuzz.run("prometheus-query-reply", cases: 2_000) { r in
            FuzzJSON.document(&r, seeds: Self.replySeeds, keys: ["status", "data", "resultType", "result", "metric", "value", "instance", "error", "errorType"])
        } check: { bytes in
            guard let reply = try? JSONDecoder().decode(PrometheusClient.QueryReply.self, from: Data(bytes)) else { return }
            for series in reply.data?.result ?? [] {
                guard let value = series.value, value.count == 2, case .string(let text) = value[1], let v = Double(text), v.isFinite else { continue }
                _ = CacheCounters(perEngine: [series.metric?["instance"] ?? "": .init(queries: v, hits: v)])
            }
        }
        #expect(ran > 0)
    }

    // MARK: The validator's figures

    static let engines = [EngineTarget(address: "10.0.0.1:8000", baseURL: "http://10.0.0.1:8000"), EngineTarget(address: "10.0.0.2:8000", baseURL: "http://10.0.0.2:8000", name: "pod-b")]

    static func counters(_ r: inout FuzzRandom) -> CacheCounters {
        var per: [String: CacheCounters.Engine] = [:]
        for e in engines where r.chance(0.8) {
            let m = EngineMetricsSnapshot.parse(metricsPage(&r))
            per[e.address] = .init(queries: m.prefixQueries, hits: m.prefixHits)
        }
        return CacheCounters(perEngine: per)
    }

    /// The report from counters read off fuzzed engine pages and samples read off fuzzed
    /// SSE streams, rendered as the table and as JSON.
    static func report(_ r: inout FuzzRandom) -> String {
        let before = counters(&r), after = counters(&r)
        let samples = (0..<r.below(6)).map { i -> ChatSample in
            var s = ChatSample(session: "s", index: i, sentAt: Double(i), status: 200, total: Double(r.below(1000)) / 100)
            var reader = SSEReader()
            for e in reader.feed(sseStream(&r)) {
                if e.hasText, s.ttft == nil { s.ttft = Double(r.below(100)) / 1000 }
                if let p = e.promptTokens { s.promptTokens = p }
                if let c = e.cachedTokens { s.cachedTokens = c }
            }
            if r.chance(0.2) { s.error = "boom" }
            s.upstream = r.chance(0.5) ? r.pick(engines).address : nil
            return s
        }
        let settings = ValidationSettings(gatewayURL: "http://gw", requests: samples.count, sessionID: "s", minHitRate: 0.5, minStickiness: 0.5)
        let report = ValidationReport(settings: settings, engines: engines, before: before, after: after, samples: samples, source: "engines", warnings: [])
        _ = try? report.json()
        return report.renderTable()
    }

    @Test("engine pages and streams through counters into the report: no trap in the figures")
    func validatorFigures() async {
        // In a child process: the data layer's parser belongs to the engines' side and a
        // trap there must fail this test, not end the run.
        await #expect(processExitsWith: .success) {
            Fuzz.run("validator-figures", cases: 1_500, generate: { r in Self.report(&r) }, bytes: { Array($0.utf8) }, check: { _ in })
        }
    }

    @Test("a counter beyond Int64 is printed, not a trap")
    func hugeCounter() {
        #expect(Validator.count(1e300) != "")
        #expect(ValidationReport.count(-1e300) != "")
        #expect(ValidationReport.count(42.4) == "42")
    }

    @Test("threshold flags: numbers, percentages and garbage")
    func thresholds() {
        let ran = Fuzz.run("threshold-flag", cases: 2_000) { r in
            Array((r.chance(0.7) ? r.pick(FuzzText.numberLiterals + FuzzText.badNumberLiterals) + (r.chance(0.3) ? "%" : "") : FuzzText.string(&r)).utf8)
        } check: { bytes in
            do {
                let v = try ValidationSettings.parseThreshold(String(decoding: bytes, as: UTF8.self), flag: "--min-hit-rate")
                #expect(v >= 0 && v <= 1)
            } catch is ValidationFailure {
            } catch {
                Issue.record("not a ValidationFailure: \(error)")
            }
            _ = ValidationSettings.parseList(String(decoding: bytes, as: UTF8.self))
        }
        #expect(ran > 0)
    }
}
