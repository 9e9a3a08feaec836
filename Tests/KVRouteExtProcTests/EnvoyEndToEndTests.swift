import Foundation
import KVRouteCore
import KVRouteExtProc
import KVRouteGateway
import KVRouteTestSupport
import Synchronization
import Testing

/// Real Envoy 1.40 → kvroute epp → simulated engines, all on loopback, with the shipped
/// configurations from deploy/envoy.
@Suite("kvroute epp behind real Envoy", .serialized, .enabled(if: EnvoyProcess.binary != nil || ExternalTool.peersRequired))
struct EnvoyEndToEndTests {
    static var configs: [String] {
        let dir = ExternalTool.repositoryRoot.appendingPathComponent("deploy/envoy")
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
    }

    @Test("every deploy/envoy configuration passes envoy --mode validate", arguments: configs)
    func validate(_ config: String) throws {
        let modes = config == "envoy-epp.yaml" ? ["NONE", "BUFFERED", "STREAMED"] : ["NONE"]
        for mode in modes {
            let rendered = try EnvoyProcess.render(config, listen: 10000, admin: 10001, epp: 9002, eppHealth: 9003,
                                                   engines: ["127.0.0.1:18001", "127.0.0.1:18002"], mode: mode)
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("kvroute-validate-\(mode)-\(config)").path
            try rendered.write(toFile: file, atomically: true, encoding: .utf8)
            let r = try ExternalTool.run(try ExternalTool.require("envoy"), ["--mode", "validate", "-c", file, "--disable-hot-restart"])
            #expect(r.status == 0, "\(config) \(mode): \(r.stdout.suffix(1500)) \(r.stderr.suffix(1500))")
        }
    }

    /// Sends the ramp's request `count` times, one after another; requests per engine.
    static func ramp(_ count: Int, to url: String, headers: [(String, String)]) async throws -> [String: Int] {
        var pods: [String: Int] = [:]
        for _ in 0..<count {
            let r = try await TestHTTP.postJSON(url + "/v1/chat/completions", chat(system: sharedPrefix(0, tokens: 1000), user: "Plan the rollout.", maxTokens: 16), headers: headers)
            #expect(r.status == 200, "\(r.body.prefix(200))")
            pods[r.headers.first(name: "x-inference-pod") ?? "?", default: 0] += 1
        }
        return pods
    }

    @Test("the ramp, headers only: 100 % on one engine, delta hit rate ≥ 95 %; forged destinations ignored; health SERVING")
    func headersOnlyRamp() async throws {
        try await withSimCluster(engines: 3) { _, urls in
            try await withPicker(engines: urls) { picker in
                let c = picker.configuration
                let envoy = try EnvoyProcess(config: "envoy-epp.yaml", eppPort: c.grpcPort, eppHealthPort: c.healthPort, engines: urls)
                defer { envoy.stop() }
                try await envoy.waitReady()
                try await resetCaches(urls)
                let headers = [("x-session-id", "ramp"), ("session-id", "ramp")]
                _ = try await Self.ramp(1, to: envoy.url, headers: headers)
                let before = try await engineCounters(urls)
                let pods = try await Self.ramp(80, to: envoy.url, headers: headers)
                let after = try await engineCounters(urls)
                let rate = (after.hits - before.hits) / max(1, after.queries - before.queries)
                print("epp ramp (headers only): pods \(pods), delta hit rate \(String(format: "%.4f", rate))")
                #expect(pods.count == 1)
                #expect(rate >= 0.95)
                #expect(try await envoy.stat("cluster.picked_endpoint.upstream_rq_total") >= 81)
                #expect(try await envoy.stat("http.gateway.ext_proc.failure_mode_allowed") == 0)

                // The metadata reaches Envoy (route 1 echoes envoy.lb into a response header).
                let one = try await TestHTTP.postJSON(envoy.url + "/v1/chat/completions", chat(system: "x", user: "y"), headers: headers)
                let picked = one.headers.first(name: "x-kvroute-picked") ?? ""
                #expect(picked.split(separator: ",").first.map(String.init) == one.headers.first(name: "x-upstream-host"), "\(one.headers)")

                // A forged destination is stripped by Envoy and never obeyed: the session stays.
                let forged = try await Self.ramp(3, to: envoy.url, headers: headers + [("x-gateway-destination-endpoint", "127.0.0.1:\(c.metricsPort)")])
                #expect(forged.keys.sorted() == pods.keys.sorted())
                let unrouted = try await TestHTTP.postJSON(envoy.url + "/v1/chat/completions", chat(system: "x", user: "y"),
                                                           headers: [("x-gateway-destination-endpoint", "127.0.0.1:\(c.metricsPort)")])
                #expect(unrouted.status == 200 && unrouted.headers.first(name: "x-inference-pod") != nil)

                // gRPC health, asked directly and by Envoy's health checker.
                let names = ["", "envoy.service.ext_proc.v3.ExternalProcessor", "liveness", "readiness"]
                let s = try await healthStatuses(port: c.healthPort, services: names)
                #expect(names.allSatisfy { s[$0] == .serving }, "\(s)")
                #expect(try await envoy.stat("cluster.kvroute_epp.health_check.success") >= 1)
                #expect(try await envoy.stat("cluster.kvroute_epp.health_check.failure") == 0)
            }
        }
    }

    @Test("BUFFERED and STREAMED request bodies through Envoy: routed by the picker, bodies delivered", arguments: ["BUFFERED", "STREAMED"])
    func bodyModes(_ mode: String) async throws {
        try await withSimCluster(engines: 3) { _, urls in
            try await withPicker(engines: urls) { picker in
                let c = picker.configuration
                let envoy = try EnvoyProcess(config: "envoy-epp.yaml", eppPort: c.grpcPort, eppHealthPort: c.healthPort, engines: urls, requestBodyMode: mode)
                defer { envoy.stop() }
                try await envoy.waitReady()
                for i in 0..<6 {
                    let body = chat(system: sharedPrefix(i % 2, tokens: 300), user: "question \(i)")
                    let r = try await TestHTTP.postJSON(envoy.url + "/v1/chat/completions", body)
                    #expect(r.status == 200, "\(mode): \(r.status) \(r.body.prefix(300))")
                }
                #expect(try await envoy.stat("cluster.picked_endpoint.upstream_rq_total") == 6)
                let bad = try await TestHTTP.request(envoy.url + "/v1/chat/completions", method: .POST, body: "{\"model\": ")
                if mode == "BUFFERED" {
                    #expect(bad.status == 400)
                    #expect((bad.json?["error"] as? [String: Any])?["message"] as? String == "the request body is not valid JSON")
                }
                let metrics = try await TestHTTP.request("http://127.0.0.1:\(c.metricsPort)/metrics", contentType: nil).body
                #expect(metrics.contains("kvroute_epp_streams_total{mode=\"\(mode.lowercased())\"}"))
            }
        }
    }

    /// 32 sessions over 4 shared ~2k-token prefixes (session s uses prefix s % 4), 2 turns
    /// each, one request at a time in a seeded random order of sessions per turn; the
    /// engines' delta hit rate and whether each answer counted exactly the prompt sent. An
    /// engine holds little more than one prefix, so placement decides the hit rate: keeping
    /// each prefix on as few engines as possible hits after its first requests; spreading
    /// every prefix over every engine keeps evicting them. Deterministic for a given order.
    static func sharedPrefixes(through url: String, engines: [String]) async throws -> (rate: Double, intact: Bool) {
        try await resetCaches(engines)
        let before = try await engineCounters(engines)
        var intact = true
        var rng = SeededGenerator(seed: 7)
        for turn in 0..<2 {
            for s in Array(0..<32).shuffled(using: &rng) {
                let body = chat(system: sharedPrefix(s % 4, tokens: 2000), user: "Session \(s) turn \(turn): café ☕ and \"quotes\"", maxTokens: 8)
                let r = try await TestHTTP.postJSON(url + "/v1/chat/completions", body, headers: [("x-session-id", "fd-\(s)")])
                let direct = try await TestHTTP.postJSON(engines[0] + "/tokenize", ["model": "meta-llama/Llama-3.2-3B-Instruct", "messages": body["messages"]!])
                intact = intact && r.status == 200 && ((r.json?["usage"] as? [String: Any])?["prompt_tokens"] as? Int) == (direct.json?["count"] as? Int)
            }
        }
        let after = try await engineCounters(engines)
        return ((after.hits - before.hits) / max(1, after.queries - before.queries), intact)
    }

    @Test("full duplex: prefix-aware placement (hit rate ≥ 2× round-robin), bodies intact, our 400s, session tokens")
    func fullDuplex() async throws {
        // 170 blocks of 16 tokens: room for one ~2k-token prefix and a third of another.
        let engine = testEngineConfiguration(numGPUBlocks: 170, maxNumSeqs: 64)
        let kv: (rate: Double, intact: Bool) = try await withSimCluster(engines: 3, engine: engine) { _, urls in
            try await withPicker(engines: urls) { picker in
                let c = picker.configuration
                let envoy = try EnvoyProcess(config: "envoy-epp-full-duplex.yaml", eppPort: c.grpcPort, eppHealthPort: c.healthPort, engines: urls)
                defer { envoy.stop() }
                try await envoy.waitReady()
                let bad = try await TestHTTP.request(envoy.url + "/v1/chat/completions", method: .POST, body: "{\"model\": ")
                #expect(bad.status == 400)
                #expect((bad.json?["error"] as? [String: Any])?["message"] as? String == "the request body is not valid JSON")
                let noModel = try await TestHTTP.request(envoy.url + "/v1/chat/completions", method: .POST, body: #"{"messages":[]}"#)
                #expect(noModel.status == 400)
                #expect(noModel.body.contains("model"))
                let one = try await TestHTTP.postJSON(envoy.url + "/v1/chat/completions", chat(system: "s", user: "u"))
                let token = one.headers.first(name: "x-session-token").flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) }
                #expect(token != nil && token == one.headers.first(name: "x-upstream-host"), "\(one.headers)")
                let result = try await Self.sharedPrefixes(through: envoy.url, engines: urls)
                let metrics = try await TestHTTP.request("http://127.0.0.1:\(c.metricsPort)/metrics", contentType: nil).body
                #expect(TestHTTP.metricSum(metrics, "kvroute_epp_cached_prompt_tokens_total") > 0)
                #expect(try await envoy.stat("cluster.picked_endpoint.upstream_rq_total") >= 65)
                return result
            }
        }
        let rr: (rate: Double, intact: Bool) = try await withSimCluster(engines: 3, engine: engine) { _, urls in
            let gateway = try Gateway(configuration: .init(host: "127.0.0.1", port: 0, endpoints: urls, pickerConfig: .roundRobin), logger: quietLogger)
            await gateway.warmUp()
            return try await withServices(gateway.services) {
                let port = await gateway.waitUntilListening()
                return try await Self.sharedPrefixes(through: "http://127.0.0.1:\(port)", engines: urls)
            }
        }
        print(String(format: "epp full duplex: hit rate %.3f vs round-robin %.3f (%.2f×)", kv.rate, rr.rate, kv.rate / max(rr.rate, 1e-9)))
        #expect(kv.intact)
        // An absolute floor as well as the contrast: with each prefix kept on one engine, at
        // least two of the four have an engine to themselves and hit on all their requests
        // but the first (2 × 15 of 64 requests, ~2k of ~2k tokens each): 0.45.
        #expect(kv.rate >= 0.45)
        #expect(kv.rate >= 2 * rr.rate)
    }

    @Test("full duplex: the body reaches the engine byte for byte, framed by content-length or chunked", arguments: [false, true])
    func bytesIntact(_ chunkedUpload: Bool) async throws {
        let echo = EchoEngine()
        try await withServices([echo.application]) {
            try await waitForPort(echo.port)
            try await withPicker(engines: [echo.url]) { picker in
                let c = picker.configuration
                let envoy = try EnvoyProcess(config: "envoy-epp-full-duplex.yaml", eppPort: c.grpcPort, eppHealthPort: c.healthPort, engines: [echo.url])
                defer { envoy.stop() }
                try await envoy.waitReady()
                let body = #"{"model":"meta-llama/Llama-3.2-3B-Instruct","messages":[{"role":"user","content":""# + String(repeating: "Ünïcödé ☕ \\\"q\\\" line\\n ", count: 900) + #""}]}"#
                let r = try await TestHTTP.request(envoy.url + "/v1/chat/completions", method: .POST, body: body, chunked: chunkedUpload)
                #expect(r.status == 200)
                #expect(r.body == body, "body changed on the way (\(r.body.utf8.count) vs \(body.utf8.count) bytes)")
                // The picker sets content-length for the whole body; Envoy 1.40 still removes
                // it in FULL_DUPLEX_STREAMED mode and sends the body chunked (envoyproxy/envoy
                // issue 39035). Either framing must describe exactly the body.
                let length = r.headers.first(name: "x-echo-content-length")
                let encoding = r.headers.first(name: "x-echo-transfer-encoding")
                #expect((length == String(body.utf8.count) && encoding == "-") || (length == "-" && encoding == "chunked"),
                        "content-length \(length ?? "nil"), transfer-encoding \(encoding ?? "nil")")
            }
        }
    }

    /// 20 sessions × 3 requests, one after another; per session, requests per engine; and
    /// how many requests failed.
    static func sessions(_ tag: String, through url: String) async throws -> (pods: [String: [String: Int]], failed: Int) {
        var seen: [String: [String: Int]] = [:]
        var failed = 0
        for s in 0..<20 {
            for i in 0..<3 {
                let r = try await TestHTTP.postJSON(url + "/v1/chat/completions", chat(system: sharedPrefix(s, tokens: 200), user: "\(tag) \(i)"),
                                                    headers: [("x-session-id", "kill-\(s)")])
                if r.status != 200 { failed += 1 }
                seen["kill-\(s)", default: [:]][r.headers.first(name: "x-inference-pod") ?? "?", default: 0] += 1
            }
        }
        return (seen, failed)
    }

    static func stickiness(_ pods: [String: [String: Int]]) -> Double {
        let top = pods.values.reduce(0) { $0 + ($1.values.max() ?? 0) }
        let all = pods.values.reduce(0) { $0 + $1.values.reduce(0, +) }
        return Double(top) / Double(max(1, all))
    }

    @Test("kvroute epp killed mid-run: Envoy fails open to the ring hash, sessions stay put, nothing fails; restarted, the picker routes again")
    func pickerKilled() async throws {
        let binary = try #require(kvrouteBinary, "build kvroute first (swift build)")
        try await withSimCluster(engines: 3) { _, urls in
            let grpc = freePort(), health = freePort(), metrics = freePort()
            let args = ["epp", "--host", "127.0.0.1", "--grpc-port", "\(grpc)", "--health-port", "\(health)", "--metrics-port", "\(metrics)",
                        "--endpoints", urls.joined(separator: ","), "--log-level", "error", "--seed", "1"]
            var epp = try BackgroundProcess(binary, args, name: "epp")
            defer { epp.stop() }
            try await waitForPort(grpc)
            let envoy = try EnvoyProcess(config: "envoy-epp.yaml", eppPort: grpc, eppHealthPort: health, engines: urls)
            defer { envoy.stop() }
            try await envoy.waitReady()

            // A client keeps sending through the kill and the restart.
            let stop = Flag()
            let background = Task {
                var failed = 0, sent = 0
                while !stop.isSet {
                    let r = try await TestHTTP.postJSON(envoy.url + "/v1/chat/completions", chat(system: "background", user: "q"), headers: [("x-session-id", "bg")])
                    sent += 1
                    if r.status != 200 { failed += 1 }
                }
                return (sent, failed)
            }
            let up = try await Self.sessions("up", through: envoy.url)
            kill(epp.process.processIdentifier, SIGKILL)
            epp.process.waitUntilExit()
            let down = try await Self.sessions("down", through: envoy.url)
            let allowed = try await envoy.stat("http.gateway.ext_proc.failure_mode_allowed")
            epp = try BackgroundProcess(binary, args, name: "epp")
            try await waitForPort(grpc)
            let ringBefore = try await envoy.stat("cluster.engines_ring_hash.upstream_rq_total")
            let again = try await Self.sessions("again", through: envoy.url)
            let ringAfter = try await envoy.stat("cluster.engines_ring_hash.upstream_rq_total")
            stop.set()
            let (sent, bgFailed) = try await background.value
            let moved = down.pods.filter { $0.value.keys.first != up.pods[$0.key]?.keys.first }.count
            print(String(format: "epp killed: stickiness up %.3f, fail-open %.3f, restarted %.3f; %d/20 sessions on another engine while down; background %d sent, %d failed",
                         Self.stickiness(up.pods), Self.stickiness(down.pods), Self.stickiness(again.pods), moved, sent, bgFailed))
            #expect(up.failed + down.failed + again.failed + bgFailed == 0)
            #expect(allowed >= 60)
            #expect(Self.stickiness(down.pods) >= 0.99)
            #expect(Self.stickiness(again.pods) >= 0.99)
            #expect(ringAfter - ringBefore < 3, "after the restart the picker routes (at most the restart's first requests fail open)")
            let m = try await TestHTTP.request("http://127.0.0.1:\(metrics)/metrics", contentType: nil).body
            #expect(TestHTTP.metricSum(m, "kvroute_epp_streams_total") >= 60)
        }
    }
}

/// A flag one task sets and another polls.
final class Flag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}
