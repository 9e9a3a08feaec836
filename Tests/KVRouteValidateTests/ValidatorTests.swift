import AsyncHTTPClient
import Foundation
import KVRouteTestSupport
import Testing
@testable import KVRouteValidate

/// The validator against simulated vLLM engines; one engine doubles as the "gateway", so
/// every request lands on it and stickiness must be 100 %.
@Suite("kvroute validate: the cache-hit ramp", .serialized)
struct ValidatorTests {
    @Test("the ramp (1 warm-up, 20 requests): delta hit rate ≥ 95 %, stickiness 100 %, every step reported")
    func ramp() async throws {
        try await withSimCluster(engines: 3) { _, urls in
            let (r, out) = try await validate(rampSettings(gateway: urls[0], metrics: urls))
            #expect((r.deltaHitRate ?? 0) >= 0.95, "\(r.renderTable())")
            #expect((r.overallHitRate ?? 0) > 0.5)
            #expect(r.stickinessHeader == 1)
            #expect(r.stickinessMetrics == 1)
            #expect(r.requests == 20 && r.errors == 0)
            #expect(r.grade == "EXCELLENT")
            #expect(r.passed, "\(r.failures)")
            #expect(r.perEngine.count == 3)
            #expect(r.perEngine.filter { $0.queryDelta > 0 }.count == 1, "only the 'gateway' engine saw queries")
            #expect(r.perEngine[0].address == String(urls[0].dropFirst("http://".count)))
            #expect(r.sessions.count == 1 && r.sessions[0].stickiness == 1 && r.sessions[0].topUpstream == "sim-0")
            // The engines report cached tokens in usage; it agrees with the counters.
            let usage = try #require(r.usageHitRate)
            #expect(abs(usage - r.deltaHitRate!) < 0.01)
            #expect(r.ttftMs.first3 != nil && r.ttftMs.last3 != nil && r.ttftMs.p50 != nil)
            for step in ["verify", "reset", "gateway", "warm-up", "baseline", "measure", "final", "results"] {
                #expect(out.steps.contains { $0.hasPrefix(step + ":") }, "missing step \(step): \(out.steps)")
            }
            // Progress: one call per finished request, ending at the total.
            let measured = out.progress.filter { $0.0 == "requests" }
            #expect(measured.count == 20 && measured.last?.1 == 20 && measured.allSatisfy { $0.2 == 20 })
            #expect(r.warnings.isEmpty, "\(r.warnings)")
            let table = r.renderTable()
            #expect(table.contains("Delta hit rate") && table.contains("PASS"))
            #expect(!table.contains("\u{1B}"), "no escape codes unless asked")
            #expect(r.renderTable(color: true).contains("\u{1B}["))
        }
    }

    @Test("the JSON report has every documented field, typed as docs/VALIDATE.md says")
    func jsonSchema() async throws {
        try await withSimCluster(engines: 2) { _, urls in
            var s = rampSettings(gateway: urls[1], metrics: urls, requests: 5)
            s.sessions = 2
            s.minHitRate = 0.5
            let (r, _) = try await validate(s)
            let json = try #require(try JSONSerialization.jsonObject(with: r.json()) as? [String: Any])
            for key in ["delta_hit_rate", "overall_hit_rate", "usage_hit_rate", "stickiness_header", "stickiness_metrics", "ttft_improvement"] {
                let v = try #require(json[key] as? Double, "\(key) is a number")
                if key != "ttft_improvement" { #expect((0...1).contains(v), "\(key) is a fraction") }
            }
            #expect(json["requests"] as? Int == 10)
            #expect(json["errors"] as? Int == 0)
            for key in ["ttft_ms", "total_ms"] {
                let t = try #require(json[key] as? [String: Any])
                for k in ["p50", "p90", "p99", "first3", "last3"] { #expect(t[k] is Double, "\(key).\(k)") }
            }
            let engines = try #require(json["per_engine"] as? [[String: Any]])
            #expect(engines.count == 2)
            for e in engines {
                #expect(e["address"] is String && e["query_delta"] is Double && e["hit_delta"] is Double && e["requests"] is Int)
                #expect(e.keys.contains("name") && e["name"] is NSNull, "name is null without Kubernetes")
                #expect(e.keys.contains("hit_rate"))
            }
            #expect(engines.map { $0["requests"] as! Int }.reduce(0, +) == 0, "sim-N names are not addresses: no attribution")
            let sessions = try #require(json["sessions"] as? [[String: Any]])
            #expect(sessions.count == 2)
            for x in sessions {
                #expect(x["id"] is String && x["requests"] as? Int == 5 && x["errors"] as? Int == 0)
                #expect(x["stickiness"] as? Double == 1 && x["top_upstream"] as? String == "sim-1")
            }
            #expect(json["grade"] as? String == "EXCELLENT")
            #expect(json["passed"] as? Bool == true)
            #expect(json["failures"] as? [String] == [])
            #expect(json["warnings"] is [String])
            #expect(json["metrics_source"] as? String == "engines' /metrics")
            #expect(json["gateway_url"] as? String == urls[1] && json["model"] as? String == s.model)
            let settings = try #require(json["settings"] as? [String: Any])
            #expect(settings["requests"] as? Int == 5 && settings["sessions"] as? Int == 2 && settings["min_hit_rate"] as? Double == 0.5)
            #expect(settings["warmup_count"] as? Int == 1 && settings["sleep_seconds"] as? Double == 0.01 && settings["max_tokens"] as? Int == 16)
            #expect(settings["session_id"] as? String == "test-session" && settings["reset"] as? Bool == true)
            #expect(settings.keys.contains("min_stickiness") && settings["min_stickiness"] is NSNull)
            #expect((settings["prompt_characters"] as? Int ?? 0) >= 4000)
            #expect(settings["metrics_urls"] as? [String] == urls)
            // It decodes back.
            let back = try JSONDecoder().decode(ValidationReport.self, from: r.json())
            #expect(back.deltaHitRate == r.deltaHitRate && back.sessions.count == 2 && back.settings.sessions == 2)
        }
    }

    @Test("thresholds set the verdict: met → exit 0, not met → exit 1 with the reason")
    func thresholds() async throws {
        try await withSimCluster(engines: 1) { _, urls in
            var s = rampSettings(gateway: urls[0], metrics: urls, requests: 5)
            s.minHitRate = 0.9
            s.minStickiness = 0.99
            #expect(await outcome(s).code == 0)
            s.minHitRate = 0.999
            let (code, reason) = await outcome(s)
            #expect(code == 1)
            #expect(reason.contains("delta hit rate") && reason.contains("below the minimum 99.9%"), "\(reason)")
        }
    }

    @Test("no prefix-cache queries seen is exit 1")
    func noQueries() async throws {
        // The "gateway" is one engine; the metrics come from another that never sees a request.
        try await withSimCluster(engines: 2) { _, urls in
            let s = rampSettings(gateway: urls[0], metrics: [urls[1]], requests: 3)
            let (r, _) = try await validate(s)
            #expect(!r.passed)
            #expect(r.deltaHitRate == nil && r.grade == "NO DATA")
            #expect(r.failures.contains { $0.contains("no prefix-cache queries") })
            #expect(await outcome(s).code == 1)
        }
    }

    @Test("sessions run concurrently and each is measured for stickiness")
    func sessions() async throws {
        try await withSimCluster(engines: 2) { _, urls in
            var s = rampSettings(gateway: urls[0], metrics: urls, requests: 4)
            s.sessions = 3
            s.distinctPrompts = true
            s.minStickiness = 1
            let (r, out) = try await validate(s)
            #expect(r.requests == 12 && r.errors == 0)
            #expect(r.sessions.map(\.id) == ["test-session-0", "test-session-1", "test-session-2"])
            #expect(r.sessions.allSatisfy { $0.requests == 4 && $0.stickiness == 1 })
            #expect(r.stickinessHeader == 1 && r.passed)
            #expect(out.progress.filter { $0.0 == "warm-up" }.count == 3)
        }
    }

    @Test("a block size other than expected is a warning naming both")
    func blockSizeWarning() async throws {
        try await withSimCluster(engines: 1) { _, urls in
            var s = rampSettings(gateway: urls[0], metrics: urls, requests: 2)
            s.blockSize = 32
            let (r, out) = try await validate(s)
            #expect(r.warnings.contains { $0.contains("block size 16") && $0.contains("expected 32") }, "\(r.warnings)")
            #expect(out.all.contains { $0.hasPrefix("warning: ") && $0.contains("block size 16") })
            #expect(r.passed, "a warning does not fail the run")
        }
    }

    @Test("Prometheus as the source gives the same hit-rate figures as the engines' /metrics",
          .enabled(if: ExternalTool.available("prometheus")))
    func prometheusAgrees() async throws {
        let binary = try ExternalTool.require("prometheus")
        try await withSimCluster(engines: 3) { _, urls in
            let prom = try PrometheusServer(binary: binary, targets: urls)
            defer { prom.stop() }
            _ = try await prom.waitForQuery("count(up == 1)", atLeast: 3)
            // Same engines, same settings, two fresh sessions; the first run is direct.
            var direct = rampSettings(gateway: urls[0], metrics: urls, requests: 10)
            direct.sessionID = "direct"
            let (a, _) = try await validate(direct)
            var viaProm = direct
            viaProm.sessionID = "via-prometheus"
            viaProm.prometheusURL = prom.url
            let (b, out) = try await validate(viaProm)
            #expect(b.metricsSource == "Prometheus \(prom.url)")
            #expect(b.warnings.isEmpty, "Prometheus caught up: \(b.warnings)")
            let da = try #require(a.deltaHitRate), db = try #require(b.deltaHitRate)
            print(String(format: "validate: delta hit rate %.4f via /metrics, %.4f via Prometheus", da, db))
            #expect(abs(da - db) < 1e-9, "both runs are the same ramp on reset caches")
            #expect(b.perEngine.map(\.queryDelta) == a.perEngine.map(\.queryDelta))
            #expect(b.stickinessMetrics == 1)
            // Prometheus's totals agree with the engines' own pages right now.
            var engineTotal = 0.0
            for u in urls { engineTotal += TestHTTP.metricSum(try await TestHTTP.request(u + "/metrics").body, "vllm:prefix_cache_queries_total") }
            #expect(try await prom.query("sum(vllm:prefix_cache_queries_total)") == engineTotal)
            #expect(out.steps.contains { $0.hasPrefix("baseline: prefix-cache counters from Prometheus") })
        }
    }

    @Test("Prometheus alone (no engine URLs): per-engine figures from its instances",
          .enabled(if: ExternalTool.available("prometheus")))
    func prometheusOnly() async throws {
        let binary = try ExternalTool.require("prometheus")
        try await withSimCluster(engines: 2) { _, urls in
            let prom = try PrometheusServer(binary: binary, targets: urls)
            defer { prom.stop() }
            _ = try await prom.waitForQuery("count(up == 1)", atLeast: 2)
            var s = rampSettings(gateway: urls[1], metrics: [], requests: 5)
            s.reset = false
            s.prometheusURL = prom.url
            let (r, _) = try await validate(s)
            #expect((r.deltaHitRate ?? 0) >= 0.8, "\(r.renderTable())")
            #expect(Set(r.perEngine.map(\.address)) == Set(urls.map { String($0.dropFirst("http://".count)) }))
            #expect(r.stickinessMetrics == 1)
        }
    }
}

@Suite("kvroute validate: parsing and streaming")
struct ValidatorUnitTests {
    @Test("thresholds are fractions or percentages", arguments: [
        ("0.95", 0.95), ("95", 0.95), ("95%", 0.95), ("1", 1.0), ("100", 1.0), ("0", 0.0), ("0.5%", 0.005), (" 99.5 ", 0.995),
    ])
    func threshold(_ text: String, _ expected: Double) throws {
        #expect(abs(try ValidationSettings.parseThreshold(text, flag: "--min-hit-rate") - expected) < 1e-12)
    }

    @Test("bad thresholds are usage errors", arguments: ["abc", "-1", "150", "101%", ""])
    func badThreshold(_ text: String) {
        #expect(throws: ValidationFailure.self) { try ValidationSettings.parseThreshold(text, flag: "--min-hit-rate") }
        do { _ = try ValidationSettings.parseThreshold(text, flag: "--min-hit-rate") } catch let f as ValidationFailure {
            #expect(f.code == .usage && f.message.hasPrefix("--min-hit-rate"))
        } catch {}
    }

    @Test("engine URLs: base or /metrics, addressed as ip:port")
    func engineURLs() throws {
        #expect(try EngineTarget(url: "http://10.0.0.5:8000/metrics").baseURL == "http://10.0.0.5:8000")
        #expect(try EngineTarget(url: "http://10.0.0.5:8000/").address == "10.0.0.5:8000")
        #expect(try EngineTarget(url: "http://engine.local").address == "engine.local:80")
        #expect(throws: ValidationFailure.self) { try EngineTarget(url: "10.0.0.5:8000") }
        #expect(ValidationSettings.parseList(" http://a:1, ,http://b:2 ") == ["http://a:1", "http://b:2"])
    }

    @Test("SSE: events split anywhere, role-only chunks are not tokens, usage and errors are read")
    func sse() {
        let stream = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\r\n\r\n"
            + "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n"
            + "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1200,\"prompt_tokens_details\":{\"cached_tokens\":1184}}}\n\n"
            + "data: {\"error\":{\"message\":\"upstream reset\"}}\n\ndata: [DONE]\n\n"
        for cut in [1, 7, 50, stream.count] {
            var reader = SSEReader()
            var events: [SSEReader.Event] = []
            var rest = Substring(stream)
            while !rest.isEmpty {
                events += reader.feed(String(rest.prefix(cut)))
                rest = rest.dropFirst(cut)
            }
            #expect(events.map(\.hasText) == [false, true, false, false])
            #expect(events[2].promptTokens == 1200 && events[2].cachedTokens == 1184)
            #expect(events[3].error == "upstream reset")
        }
    }

    @Test("grades follow the cache-hit bands (80/60/40 %)", arguments: [(0.99, "EXCELLENT"), (0.8, "EXCELLENT"), (0.7, "VERY GOOD"), (0.6, "VERY GOOD"), (0.45, "GOOD"), (0.1, "POOR")])
    func grades(_ rate: Double, _ grade: String) {
        #expect(ValidationReport.grade(rate) == grade)
    }

    @Test("the default prompt is a long consultant prompt (≥ 4,000 characters)")
    func prompt() {
        #expect(ValidationSettings.consultantPrompt.count >= 4000)
        #expect(ValidationSettings.consultantPrompt.contains("management consultant"))
        #expect(ValidationSettings.generatedSessionID().hasPrefix("kvroute-validate-"))
    }
}
