import AsyncHTTPClient
import Foundation
import KVRouteDataLayer
import KVRouteTestSupport
import Testing
@testable import KVRouteValidate

/// Output that keeps the step lines, for assertions.
final class CollectingOutput: ValidationOutput, @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func step(_ line: String) { lock.lock(); lines.append(line); lock.unlock() }
    func progress(_ label: String, done: Int, total: Int) {}
    func warning(_ line: String) { lock.lock(); lines.append("warning: " + line); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
}

func settings(gateway: String, metrics: [String], requests: Int = 20) -> ValidationSettings {
    ValidationSettings(gatewayURL: gateway, requests: requests, sleepSeconds: 0.01, sessionID: "test-session", metricsURLs: metrics, reset: true)
}

func validate(_ s: ValidationSettings, environment: [String: String] = [:]) async throws -> (ValidationReport, CollectingOutput) {
    let out = CollectingOutput()
    let report = try await Validator(settings: s, client: HTTPClient.shared, output: out, environment: environment).run()
    return (report, out)
}

/// The exit code a validation ends with (as `kvroute validate` maps it).
func exitCode(_ s: ValidationSettings) async -> Int32 {
    do {
        let (r, _) = try await validate(s)
        return r.passed ? 0 : 1
    } catch let f as ValidationFailure {
        return f.code.exitCode
    } catch {
        return 99
    }
}

@Suite("kvroute validate", .serialized)
struct ValidatorTests {
    @Test("the seed's ramp against one engine: hit rate ≥ 95 %, stickiness 100 %, every step reported")
    func ramp() async throws {
        try await withSimCluster(engines: 3) { _, urls in
            let (r, out) = try await validate(settings(gateway: urls[0], metrics: urls))
            #expect((r.deltaHitRate ?? 0) >= 0.95)
            #expect(r.stickinessHeader == 1)
            #expect(r.stickinessMetrics == 1)
            #expect(r.requests == 20 && r.errors == 0)
            #expect(r.grade == "EXCELLENT")
            #expect(r.passed)
            #expect(r.perEngine.map(\.queryDelta).filter { $0 > 0 }.count == 1)
            for step in ["verify", "reset", "gateway", "warm-up", "baseline", "measure", "final"] {
                #expect(out.all.contains { $0.hasPrefix(step) }, "missing step \(step)")
            }
            #expect(r.renderTable().contains("Delta hit rate"))
        }
    }

    @Test("the JSON report has the documented fields and types")
    func jsonSchema() async throws {
        try await withSimCluster(engines: 2) { _, urls in
            var s = settings(gateway: urls[1], metrics: urls, requests: 5)
            s.sessions = 2
            let (r, _) = try await validate(s)
            let json = try #require(try JSONSerialization.jsonObject(with: r.json()) as? [String: Any])
            for key in ["delta_hit_rate", "overall_hit_rate", "stickiness_header", "stickiness_metrics"] {
                let v = try #require(json[key] as? Double, "\(key)")
                #expect((0...1).contains(v))
            }
            #expect(json["requests"] as? Int == 10)
            #expect(json["errors"] as? Int == 0)
            let ttft = try #require(json["ttft_ms"] as? [String: Any])
            for k in ["p50", "p90", "p99", "first3", "last3"] { #expect(ttft[k] is Double, "ttft_ms.\(k)") }
            let engines = try #require(json["per_engine"] as? [[String: Any]])
            #expect(engines.count == 2)
            #expect(engines.allSatisfy { $0["address"] is String && $0["query_delta"] is Double && $0["hit_delta"] is Double && $0["requests"] is Int })
            let sessions = try #require(json["sessions"] as? [[String: Any]])
            #expect(sessions.count == 2)
            #expect(json["grade"] is String && json["passed"] is Bool)
        }
    }

    @Test("thresholds set the verdict: met → pass, unmet → fail with reasons")
    func thresholds() async throws {
        try await withSimCluster(engines: 1) { _, urls in
            var s = settings(gateway: urls[0], metrics: urls, requests: 5)
            s.minHitRate = 0.9
            s.minStickiness = 0.99
            #expect(await exitCode(s) == 0)
            s.minHitRate = 0.999
            let (r, _) = try await validate(s)
            #expect(!r.passed)
            #expect(r.failures.contains { $0.contains("below the minimum") })
        }
    }

    @Test("no queries seen is a failure (exit 1)")
    func noQueries() async throws {
        // The "gateway" is one engine, the metrics another that never sees a request.
        try await withSimCluster(engines: 2) { _, urls in
            let s = settings(gateway: urls[0], metrics: [urls[1]], requests: 3)
            let (r, _) = try await validate(s)
            #expect(!r.passed)
            #expect(r.failures.contains { $0.contains("no prefix-cache queries") })
            #expect(await exitCode(s) == 1)
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
            var direct = settings(gateway: urls[0], metrics: urls, requests: 10)
            direct.reset = false
            let (a, _) = try await validate(direct)
            var viaProm = direct
            viaProm.prometheusURL = prom.url
            viaProm.sessionID = "test-session-2"
            let (b, _) = try await validate(viaProm)
            #expect(b.metricsSource.hasPrefix("Prometheus"))
            let da = try #require(a.deltaHitRate), db = try #require(b.deltaHitRate)
            print(String(format: "validate: delta hit rate %.4f via /metrics, %.4f via Prometheus", da, db))
            #expect(abs(da - db) < 0.005)
        }
    }
}

@Suite("kvroute validate: bad input", .serialized)
struct ValidatorBadInputTests {
    @Test("an unreachable gateway is exit 3 with the reason")
    func unreachableGateway() async throws {
        try await withSimCluster(engines: 1) { _, urls in
            let s = settings(gateway: "http://127.0.0.1:\(freePort())", metrics: urls)
            do {
                _ = try await validate(s)
                Issue.record("validated against nothing")
            } catch let f as ValidationFailure {
                #expect(f.code == .gateway)
                #expect(f.message.contains("unreachable"))
                #expect(!f.message.contains("\n"))
            }
        }
    }

    @Test("a wrong model name is exit 3 carrying the gateway's message")
    func wrongModel() async throws {
        try await withSimCluster(engines: 1) { _, urls in
            var s = settings(gateway: urls[0], metrics: urls)
            s.model = "no-such-model"
            do {
                _ = try await validate(s)
                Issue.record("accepted a wrong model")
            } catch let f as ValidationFailure {
                #expect(f.code == .gateway)
                #expect(f.message.contains("404") && f.message.contains("no-such-model"))
            }
        }
    }

    @Test("engines without prefix-cache metrics are exit 4")
    func noPrefixMetrics() async throws {
        let fake = FakeServer { _, path, _ in
            path.hasPrefix("/metrics") ? (200, "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name=\"m\"} 0\n") : (404, "{}")
        }
        try await withSimCluster(engines: 1) { _, urls in
            try await fake.run { base in
                let s = settings(gateway: urls[0], metrics: [base])
                #expect(await exitCode(s) == 4)
                do { _ = try await validate(s) } catch let f as ValidationFailure { #expect(f.message.contains("prefix_cache_queries")) }
            }
        }
    }

    @Test("Prometheus answering an error, or nothing, is exit 4 with the reason",
          arguments: [(400, #"{"status":"error","errorType":"bad_data","error":"parse error at char 4"}"#, "parse error"),
                      (200, #"{"status":"success","data":{"resultType":"vector","result":[]}}"#, "no data")])
    func prometheusBroken(_ status: Int, _ body: String, _ mention: String) async throws {
        let fake = FakeServer { _, _, _ in (status, body) }
        try await withSimCluster(engines: 1) { _, urls in
            try await fake.run { base in
                var s = settings(gateway: urls[0], metrics: urls, requests: 2)
                s.prometheusURL = base
                do {
                    _ = try await validate(s)
                    Issue.record("accepted a broken Prometheus")
                } catch let f as ValidationFailure {
                    #expect(f.code == .metrics)
                    #expect(f.message.contains(mention), "\(f.message)")
                }
            }
        }
    }
}

@Suite("kvroute validate against Kubernetes", .serialized)
struct KubernetesTests {
    @Test("pods are found through the API server, the Deployment is restarted and waited for, then validated")
    func kubernetesPath() async throws {
        try await withSimCluster(engines: 3) { _, urls in
            let ports = urls.map { $0.split(separator: ":").last! }
            let pods = try fixture("pods.json").replacingOccurrences(of: "PORT0", with: String(ports[0]))
                .replacingOccurrences(of: "PORT1", with: String(ports[1])).replacingOccurrences(of: "PORT2", with: String(ports[2]))
            let patched = try fixture("deployment-patched.json"), rolling = try fixture("deployment-rolling.json"), complete = try fixture("deployment-complete.json")
            let api = FakeServer { method, path, n in
                if path.hasPrefix("/api/v1/namespaces/llm-d/pods?labelSelector=llm-d.ai") { return (200, pods) }
                if path == "/apis/apps/v1/namespaces/llm-d/deployments/llama-decode" {
                    if method == "PATCH" { return (200, patched) }
                    return (200, n == 0 ? rolling : complete)
                }
                return (404, #"{"kind":"Status","message":"not found","code":404}"#)
            }
            try await api.run { base in
                let token = FileManager.default.temporaryDirectory.appendingPathComponent("kvroute-token-\(UUID().uuidString.prefix(6))").path
                try "test-token\n".write(toFile: token, atomically: true, encoding: .utf8)
                var s = settings(gateway: urls[2], metrics: [])
                s.kubernetes = KubernetesTarget(namespace: "llm-d", apiServer: base, tokenFile: token, caFile: nil, restartDeployment: "llama-decode")
                let (r, out) = try await validate(s)
                #expect(r.perEngine.count == 3, "the pending pod is skipped")
                #expect(r.perEngine.compactMap(\.name).allSatisfy { $0.hasPrefix("llama-decode-") })
                #expect((r.deltaHitRate ?? 0) >= 0.95)
                #expect(out.all.contains { $0.contains("rollout restart") })
                let calls = api.calls.withLock { $0 }
                let patch = try #require(calls.first { $0.method == "PATCH" })
                #expect(patch.body.contains("kubectl.kubernetes.io/restartedAt"))
                #expect(calls.filter { $0.method == "GET" && $0.path.contains("deployments") }.count >= 2)
            }
        }
    }

    @Test("an API server refusing access is exit 4 with its message")
    func forbidden() async throws {
        let body = try fixture("forbidden.json")
        let api = FakeServer { _, _, _ in (403, body) }
        try await withSimCluster(engines: 1) { _, urls in
            try await api.run { base in
                var s = settings(gateway: urls[0], metrics: [])
                s.kubernetes = KubernetesTarget(namespace: "llm-d", apiServer: base, tokenFile: "/nonexistent", caFile: nil)
                do {
                    _ = try await validate(s)
                    Issue.record("validated without API access")
                } catch let f as ValidationFailure {
                    #expect(f.code == .metrics)
                    #expect(f.message.contains("forbidden"))
                }
            }
        }
    }

    @Test("outside a cluster without --api-server: a usage error naming the fix")
    func notInCluster() async throws {
        var s = settings(gateway: "http://127.0.0.1:1", metrics: [])
        s.kubernetes = KubernetesTarget(namespace: "llm-d")
        do {
            _ = try await Validator(settings: s, client: HTTPClient.shared, output: SilentOutput(), environment: [:]).run()
            Issue.record("ran outside a cluster")
        } catch let f as ValidationFailure {
            #expect(f.code == .usage)
            #expect(f.message.contains("--api-server"))
        }
    }
}

@Suite("kvroute validate: configuration checks")
struct VerifyTests {
    @Test("engines with prefix caching off or another block size are warned about, with the reason")
    func prefixCachingOff() async throws {
        var engine = testEngineConfiguration()
        engine.enablePrefixCaching = false
        engine.blockSize = 32
        try await withSimCluster(engines: 1, engine: engine) { _, urls in
            var s = settings(gateway: urls[0], metrics: urls, requests: 3)
            s.reset = false
            let (r, out) = try await validate(s)
            #expect(out.all.contains { $0.contains("prefix caching is off") })
            #expect(out.all.contains { $0.contains("block size 32, expected 16") })
            #expect(r.warnings.count >= 2)
            #expect(r.deltaHitRate == 0)
            #expect(r.grade == "POOR")
        }
    }
}
