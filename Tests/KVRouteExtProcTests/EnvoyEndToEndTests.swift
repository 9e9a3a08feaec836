import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import KVRouteCore
import KVRouteExtProc
import KVRouteGateway
import KVRouteProto
import KVRouteTestSupport
import Testing

@Suite("kvroute epp behind real Envoy", .serialized, .enabled(if: EnvoyProcess.binary != nil || ExternalTool.peersRequired))
struct EnvoyEndToEndTests {
    @Test("every deploy/envoy configuration passes envoy --mode validate", arguments: ["envoy-epp.yaml", "envoy-epp-full-duplex.yaml"])
    func validate(_ config: String) throws {
        let root = ExternalTool.repositoryRoot
        let rendered = try ExternalTool.run(root.appendingPathComponent("deploy/envoy/render.sh").path, [
            root.appendingPathComponent("deploy/envoy/\(config)").path, "10000", "10001", "127.0.0.1:9002", "127.0.0.1:18001,127.0.0.1:18002"])
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("kvroute-validate-\(config)").path
        try rendered.stdout.write(toFile: file, atomically: true, encoding: .utf8)
        let r = try ExternalTool.run(try ExternalTool.require("envoy"), ["--mode", "validate", "-c", file, "--disable-hot-restart"])
        #expect(r.status == 0, "\(r.stdout.suffix(1500)) \(r.stderr.suffix(1500))")
    }

    @Test("the seed's ramp, headers only: 100 % on one engine, delta hit rate ≥ 95 %; forged destinations ignored; health SERVING")
    func headersOnlyRamp() async throws {
        try await withSimCluster(engines: 3) { _, urls in
            try await withPicker(engines: [urls.joined(separator: ",")]) { picker in
                let envoy = try EnvoyProcess(config: "envoy-epp.yaml", eppPort: picker.configuration.grpcPort, engines: urls)
                defer { envoy.stop() }
                try await envoy.waitReady()
                let headers = [("x-session-id", "ramp"), ("session-id", "ramp")]
                _ = try await Self.send(1, to: envoy.url, headers: headers)
                let before = try await engineCounters(urls)
                let pods = try await Self.send(80, to: envoy.url, headers: headers)
                let after = try await engineCounters(urls)
                let rate = (after.hits - before.hits) / (after.queries - before.queries)
                print("epp ramp (headers only): pods \(pods), delta hit rate \(String(format: "%.3f", rate))")
                #expect(pods.count == 1)
                #expect(rate >= 0.95)
                #expect(try await envoy.stat("http.gateway.ext_proc.streams_started") >= 81)
                #expect(try await envoy.stat("cluster.picked_endpoint.upstream_rq_total") >= 81)

                // A forged destination is stripped by Envoy and never obeyed.
                let forged = try await Self.send(1, to: envoy.url, headers: headers + [("x-gateway-destination-endpoint", "10.0.0.1:80")])
                #expect(forged.keys.first == pods.keys.first)

                // gRPC health.
                try await withGRPCClient(
                    transport: try .http2NIOPosix(target: .ipv4(host: "127.0.0.1", port: picker.configuration.healthPort), transportSecurity: .plaintext)
                ) { client in
                    let health = Grpc_Health_V1_Health.Client(wrapping: client)
                    for service in ["", "envoy.service.ext_proc.v3.ExternalProcessor", "liveness", "readiness"] {
                        var req = Grpc_Health_V1_HealthCheckRequest()
                        req.service = service
                        let status = try await health.check(req).status
                        #expect(status == .serving, "\(service)")
                    }
                }
            }
        }
    }

    /// Sends the ramp's request `count` times; requests per engine (x-inference-pod).
    static func send(_ count: Int, to url: String, headers: [(String, String)]) async throws -> [String: Int] {
        var pods: [String: Int] = [:]
        for _ in 0..<count {
            let r = try await TestHTTP.postJSON(url + "/v1/chat/completions", chat(system: prefix(0, tokens: 1000), user: "Plan the rollout.", maxTokens: 16), headers: headers)
            #expect(r.status == 200, "\(r.body.prefix(200))")
            pods[r.headers.first(name: "x-inference-pod") ?? "?", default: 0] += 1
        }
        return pods
    }

    /// 20 sessions × 3 requests; per session, requests per engine.
    static func sessions(_ tag: String, through url: String) async throws -> [String: [String: Int]] {
        var seen: [String: [String: Int]] = [:]
        for s in 0..<20 {
            for i in 0..<3 {
                let r = try await TestHTTP.postJSON(url + "/v1/chat/completions", chat(system: prefix(s, tokens: 200), user: "\(tag) \(i)"),
                                                    headers: [("x-session-id", "kill-\(s)")])
                #expect(r.status == 200, "\(tag): \(r.body.prefix(200))")
                seen["kill-\(s)", default: [:]][r.headers.first(name: "x-inference-pod") ?? "?", default: 0] += 1
            }
        }
        return seen
    }

    /// Hit rate of 32 sessions over 4 shared ~2k-token prefixes, 2 requests each, four
    /// sessions at a time.
    static func sharedPrefixes(through url: String, engines: [String]) async throws -> (rate: Double, intact: Bool) {
        let before = try await engineCounters(engines)
        let intact = try await withThrowingTaskGroup(of: Bool.self) { g in
            var allIntact = true
            for s in 0..<32 {
                if s >= 4, let done = try await g.next() { allIntact = allIntact && done }
                g.addTask {
                    var ok = true
                    for turn in 0..<2 {
                        let body = chat(system: prefix(s % 4, tokens: 2000), user: "Session \(s) turn \(turn): café ☕ and \"quotes\"", maxTokens: 8)
                        let r = try await TestHTTP.postJSON(url + "/v1/chat/completions", body, headers: [("x-session-id", "fd-\(s)")])
                        // The engine counts exactly the prompt it would count if called directly.
                        let direct = try await TestHTTP.postJSON(engines[0] + "/tokenize", ["model": "meta-llama/Llama-3.2-3B-Instruct", "messages": body["messages"]!])
                        ok = ok && r.status == 200 && ((r.json?["usage"] as? [String: Any])?["prompt_tokens"] as? Int) == (direct.json?["count"] as? Int)
                    }
                    return ok
                }
            }
            return try await g.reduce(allIntact) { $0 && $1 }
        }
        let after = try await engineCounters(engines)
        return ((after.hits - before.hits) / (after.queries - before.queries), intact)
    }

    @Test("full duplex: prefix-aware placement (hit rate ≥ 2× round-robin) and bodies reach engines intact; bad bodies get our 400")
    func fullDuplex() async throws {
        let engine = testEngineConfiguration(numGPUBlocks: 300, maxNumSeqs: 64)
        let kv: (rate: Double, intact: Bool) = try await withSimCluster(engines: 3, engine: engine) { _, urls in
            try await withPicker(engines: urls) { picker in
                let envoy = try EnvoyProcess(config: "envoy-epp-full-duplex.yaml", eppPort: picker.configuration.grpcPort, engines: urls)
                defer { envoy.stop() }
                try await envoy.waitReady()
                let bad = try await TestHTTP.request(envoy.url + "/v1/chat/completions", method: .POST, body: "{\"model\": ")
                #expect(bad.status == 400)
                #expect((bad.json?["error"] as? [String: Any])?["message"] as? String == "the request body is not valid JSON")
                let noModel = try await TestHTTP.request(envoy.url + "/v1/chat/completions", method: .POST, body: #"{"messages":[]}"#)
                #expect(noModel.status == 400)
                #expect(noModel.body.contains("model"))
                return try await Self.sharedPrefixes(through: envoy.url, engines: urls)
            }
        }
        let rr: (rate: Double, intact: Bool) = try await withSimCluster(engines: 3, engine: engine) { _, urls in
            let gateway = try Gateway(configuration: .init(host: "127.0.0.1", port: 0, endpoints: urls, mode: .roundRobin), logger: quietLogger)
            await gateway.warmUp()
            return try await withServices(gateway.services) {
                let port = await gateway.waitUntilListening()
                return try await Self.sharedPrefixes(through: "http://127.0.0.1:\(port)", engines: urls)
            }
        }
        print(String(format: "epp full duplex: hit rate %.3f vs round-robin %.3f (%.2f×)", kv.rate, rr.rate, kv.rate / max(rr.rate, 1e-9)))
        #expect(kv.intact)
        #expect(kv.rate >= 2 * rr.rate)
    }

    @Test("kvroute epp killed: Envoy fails open to the ring hash, sessions stay put, nothing fails; restarted, the picker routes again",
          .enabled(if: FileManager.default.isExecutableFile(atPath: ExternalTool.repositoryRoot.appendingPathComponent(".build/debug/kvroute").path)))
    func pickerKilled() async throws {
        try await withSimCluster(engines: 3) { _, urls in
            let grpc = freePort(), health = freePort(), metrics = freePort()
            let binary = ExternalTool.repositoryRoot.appendingPathComponent(".build/debug/kvroute").path
            let args = ["epp", "--host", "127.0.0.1", "--grpc-port", "\(grpc)", "--health-port", "\(health)", "--metrics-port", "\(metrics)",
                        "--endpoints", urls.joined(separator: ","), "--log-level", "error", "--seed", "1"]
            var epp = try BackgroundProcess(binary, args, name: "epp")
            defer { epp.stop() }
            try await Task.sleep(for: .milliseconds(800))
            let envoy = try EnvoyProcess(config: "envoy-epp.yaml", eppPort: grpc, engines: urls)
            defer { envoy.stop() }
            try await envoy.waitReady()
            let up = try await Self.sessions("up", through: envoy.url)
            #expect(up.values.allSatisfy { $0.count == 1 }, "sessions stick while the picker is up")
            kill(epp.process.processIdentifier, SIGKILL)
            epp.process.waitUntilExit()
            let down = try await Self.sessions("down", through: envoy.url)
            #expect(try await envoy.stat("http.gateway.ext_proc.failure_mode_allowed") >= 60)
            for (s, pods) in down {
                let top = pods.values.max() ?? 0
                #expect(Double(top) / 3 >= 0.99, "\(s): \(pods)")
            }
            epp = try BackgroundProcess(binary, args, name: "epp")
            try await Task.sleep(for: .milliseconds(1500))
            let allowedBefore = try await envoy.stat("http.gateway.ext_proc.failure_mode_allowed")
            _ = try await Self.sessions("again", through: envoy.url)
            #expect(try await envoy.stat("http.gateway.ext_proc.failure_mode_allowed") == allowedBefore, "routing goes through the picker again")
            let m = try await TestHTTP.request("http://127.0.0.1:\(metrics)/metrics", contentType: nil).body
            #expect(TestHTTP.metricSum(m, "kvroute_epp_streams_total") >= 60)
        }
    }
}
