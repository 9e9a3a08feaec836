import Foundation
import KVRouteCore
import KVRouteGateway
import KVRouteTestSupport
import Testing

/// A `kvroute sim` process that can be killed hard, like a crashed pod.
final class EngineProcess: @unchecked Sendable {
    let port: Int
    var process: BackgroundProcess?

    init(port: Int) throws {
        self.port = port
        try start()
    }

    func start() throws {
        process = try BackgroundProcess(try KVRouteBinary.require(), [
            "sim", "--enable-prompt-tokens-details", "--port", "\(port)", "--time-scale", "1", "--num-gpu-blocks", "4096", "--max-model-len", "32768",
            "--hash-seed", "0", "--pod-name-prefix", "killable", "--log-level", "error",
        ], name: "sim-\(port)")
    }

    func kill() {
        guard let p = process?.process, p.isRunning else { return }
        Foundation.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    func waitHealthy() async throws {
        for _ in 0..<200 {
            if let r = try? await TestHTTP.request("http://127.0.0.1:\(port)/health"), r.status == 200 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ExternalTool.Missing(description: "sim on \(port) did not come up: \(process?.log ?? "")")
    }

    deinit { kill() }
}

@Suite("Gateway under failures and bad input", .serialized)
struct GatewayResilienceTests {
    @Test("an engine killed mid-run loses no request, leaves the candidate set within 1 s and returns after restart")
    func engineKilled() async throws {
        let victim = try EngineProcess(port: freePort())
        try await victim.waitHealthy()
        let victimAddress = "127.0.0.1:\(victim.port)"
        try await withSimCluster(engines: 2) { _, urls in
            try await withGateway(endpoints: urls + ["http://" + victimAddress], config: .roundRobin) { gateway, gw in
                let system = systemPrompt(group: 3, tokens: 500)
                // 30 sessions stream concurrently in rounds, spread round-robin so a third of
                // them use the victim. The victim runs in real time (≈ 0.4 s per stream), the
                // others 20× faster: when it dies at 0.3 s, streams are in flight on it.
                async let killed: Duration? = {
                    try await Task.sleep(for: .milliseconds(300))
                    victim.kill()
                    let died = ContinuousClock.now
                    while ContinuousClock.now - died < .seconds(5) {
                        if gateway.pool.snapshots().first(where: { $0.address.description == victimAddress })?.healthy == false {
                            return ContinuousClock.now - died
                        }
                        try await Task.sleep(for: .milliseconds(10))
                    }
                    return nil
                }()
                let outcomes = try await withThrowingTaskGroup(of: (served: Int, cut: Int, failed: Int, malformed: Int).self) { g in
                    for s in 0..<30 {
                        g.addTask {
                            var served = 0, cut = 0, failed = 0, malformed = 0
                            for round in 0..<4 {
                                let body = chatBody(system: system, user: "go \(s)", maxTokens: 64, stream: true)
                                let r = try await TestHTTP.postJSON(gw + "/v1/chat/completions", body, headers: [("x-session-id", "k\(s)-\(round)")])
                                if r.status == 200 && r.body.hasSuffix("data: [DONE]\n\n") {
                                    // Cut mid-stream: a clean SSE error event, then [DONE].
                                    if r.body.contains("failed mid-stream") { cut += 1 } else if r.body.contains("\"error\"") { malformed += 1 } else { served += 1 }
                                } else if (502...504).contains(r.status), (r.json?["error"] as? [String: Any])?["message"] != nil {
                                    // Sent whole to the victim as it died: not re-sent (the engine
                                    // may have run it), answered with one clean OpenAI error.
                                    failed += 1
                                } else {
                                    malformed += 1
                                }
                            }
                            return (served, cut, failed, malformed)
                        }
                    }
                    return try await g.reduce(into: (served: 0, cut: 0, failed: 0, malformed: 0)) { acc, x in
                        acc.served += x.served
                        acc.cut += x.cut
                        acc.failed += x.failed
                        acc.malformed += x.malformed
                    }
                }
                let left = try await killed
                print("engine killed: \(outcomes.served) of 120 streams completed, \(outcomes.cut) cut mid-stream with a clean error event, \(outcomes.failed) answered a clean 5xx before the stream, \(outcomes.malformed) malformed; left the candidate set after \(String(describing: left))")
                #expect(outcomes.malformed == 0, "every request got exactly one well-formed answer")
                #expect(outcomes.served + outcomes.cut + outcomes.failed == 120)
                #expect(outcomes.failed <= 10, "only requests in flight on the victim as it died fail: \(outcomes.failed)")
                #expect(outcomes.cut >= 1, "the victim died with streams in flight")
                // It leaves the candidate set within a second of dying...
                let leftAfter = try #require(left)
                #expect(leftAfter <= .seconds(1))
                // ...requests keep succeeding without it...
                for i in 0..<10 {
                    let r = try await TestHTTP.postJSON(gw + "/v1/chat/completions", chatBody(system: "x", user: "\(i)"), headers: [("x-session-id", "after-\(i)")])
                    #expect(r.status == 200)
                    #expect(r.headers.first(name: "x-upstream-host") != victimAddress)
                }
                // ...and it returns once restarted.
                try victim.start()
                try await victim.waitHealthy()
                let back = ContinuousClock.now
                var returned = false
                while ContinuousClock.now - back < .seconds(5) {
                    if gateway.pool.snapshots().first(where: { $0.address.description == victimAddress })?.healthy == true { returned = true; break }
                    try await Task.sleep(for: .milliseconds(20))
                }
                print("engine restarted: healthy again after \(ContinuousClock.now - back)")
                #expect(returned)
            }
        }
    }

    @Test("requests retry on the next endpoint when one answers 5xx before the first byte")
    func retryOn5xx() async throws {
        try await withSimCluster(engines: 3) { cluster, urls in
            cluster.servers[0].faultSettings = .init(failRate: 1, failStatus: 503)
            try await withGateway(endpoints: urls, config: .roundRobin) { _, gw in
                for i in 0..<9 {
                    let r = try await TestHTTP.postJSON(gw + "/v1/chat/completions", chatBody(system: "s", user: "\(i)"))
                    #expect(r.status == 200)
                    #expect(r.headers.first(name: "x-upstream-host") != urls[0].replacingOccurrences(of: "http://", with: ""))
                }
                let metrics = try await TestHTTP.request(gw + "/metrics").body
                #expect(TestHTTP.metricSum(metrics, "kvroute_upstream_retries_total") >= 3)
            }
        }
    }

    struct Bad: Sendable, CustomTestStringConvertible {
        var name: String
        var path = "/v1/chat/completions"
        var body: String
        var contentType = "application/json"
        var status: Int
        var testDescription: String { name }
    }

    static let bad: [Bad] = [
        Bad(name: "malformed JSON", body: "{\"model\":", status: 400),
        Bad(name: "missing model", body: #"{"messages":[{"role":"user","content":"x"}]}"#, status: 400),
        Bad(name: "oversized body", body: #"{"model":"m","prompt":"\#(String(repeating: "z", count: 5 << 20))"}"#, status: 413),
        Bad(name: "wrong content type", body: "{}", contentType: "text/plain", status: 415),
        Bad(name: "unknown route", path: "/v1/unknown", body: "{}", status: 404),
        Bad(name: "unknown model (the engine's answer passes through)", body: #"{"model":"nope","messages":[{"role":"user","content":"x"}]}"#, status: 404),
    ]

    @Test("bad input gets OpenAI error JSON with the right status", arguments: bad)
    func badInput(_ c: Bad) async throws {
        try await withSimCluster(engines: 1) { _, urls in
            try await withGateway(endpoints: urls) { _, gw in
                let r = try await TestHTTP.request(gw + c.path, method: .POST, body: c.body, contentType: c.contentType)
                #expect(r.status == c.status, "\(r.body.prefix(300))")
                #expect((r.json?["error"] as? [String: Any])?["message"] is String, "\(r.body.prefix(300))")
            }
        }
    }

    @Test("no reachable endpoint: 502/503 with a reason, and /health says so")
    func deadEndpoints() async throws {
        try await withGateway(endpoints: ["http://127.0.0.1:\(freePort())"]) { _, gw in
            let r = try await TestHTTP.postJSON(gw + "/v1/chat/completions", chatBody(system: "s", user: "u"))
            #expect(r.status == 502 || r.status == 503)
            #expect((r.json?["error"] as? [String: Any])?["message"] is String)
            #expect(try await TestHTTP.request(gw + "/health").status == 503)
        }
    }

    @Test("router metrics use the Endpoint Picker's names")
    func routerMetrics() async throws {
        try await withSimCluster(engines: 2) { _, urls in
            try await withGateway(endpoints: urls) { _, gw in
                _ = try await TestHTTP.postJSON(gw + "/v1/chat/completions", chatBody(system: "s", user: "u"))
                let m = try await TestHTTP.request(gw + "/metrics").body
                for name in ["inference_objective_request_total", "inference_objective_request_duration_seconds_bucket",
                             "inference_extension_scheduler_e2e_duration_seconds_bucket", "inference_pool_ready_pods",
                             "inference_extension_prefix_indexer_size", "inference_extension_prefix_indexer_hit_ratio",
                             "kvroute_requests_routed_total"] {
                    #expect(m.contains(name), "missing \(name)")
                }
                #expect(TestHTTP.metricSum(m, "inference_pool_ready_pods") == 2)
            }
        }
    }

    @Test("the official openai Python client works through the gateway, streaming and not",
          .enabled(if: ExternalTool.pythonWithOpenAI != nil || ExternalTool.peersRequired))
    func openAIClient() async throws {
        let python = try #require(ExternalTool.pythonWithOpenAI)
        let script = ExternalTool.repositoryRoot.appendingPathComponent("Tests/peers/openai_client_check.py").path
        try await withSimCluster(engines: 3) { _, urls in
            try await withGateway(endpoints: urls) { _, gw in
                let r = try await ExternalTool.runAsync(python, [script, "--base-url", gw + "/v1", "--session-id", "py"], timeout: 120)
                #expect(r.status == 0, "stdout: \(r.stdout)\nstderr: \(r.stderr.suffix(2000))")
            }
        }
    }
}
