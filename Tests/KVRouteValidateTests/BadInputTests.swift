import AsyncHTTPClient
import Foundation
import KVRouteTestSupport
import Testing
@testable import KVRouteValidate

/// Every way a run can be unable to measure: the documented exit code and a one-line reason.
@Suite("kvroute validate: bad input", .serialized)
struct BadInputTests {
    @Test("an unreachable gateway is exit 3, naming it")
    func unreachableGateway() async throws {
        try await withSimCluster(engines: 1) { _, urls in
            let gateway = "http://127.0.0.1:\(freePort())"
            let (code, reason) = await outcome(rampSettings(gateway: gateway, metrics: urls))
            #expect(code == 3)
            #expect(reason == "the gateway at \(gateway) is unreachable: connection refused", "\(reason)")
        }
    }

    @Test("a wrong model name is exit 3 carrying the gateway's 404 message")
    func wrongModel() async throws {
        try await withSimCluster(engines: 1) { _, urls in
            var s = rampSettings(gateway: urls[0], metrics: urls)
            s.model = "no-such-model"
            let (code, reason) = await outcome(s)
            #expect(code == 3)
            #expect(reason.contains("HTTP 404") && reason.contains("no-such-model"), "\(reason)")
            #expect(!reason.contains("\n"))
        }
    }

    @Test("engines without prefix-cache metrics are exit 4")
    func noPrefixMetrics() async throws {
        let page = "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name=\"m\"} 0\n"
        let engine = FakeServer(contentType: "text/plain; version=0.0.4") { _, path, _ in path.hasPrefix("/metrics") ? (200, page) : (404, "{}") }
        try await withSimCluster(engines: 1) { _, urls in
            try await engine.run { base in
                let (code, reason) = await outcome(rampSettings(gateway: urls[0], metrics: [base]))
                #expect(code == 4)
                #expect(reason.contains("no engine exports vllm:prefix_cache_queries_total"), "\(reason)")
            }
        }
    }

    @Test("prefix caching off is a warning with the reason; no queries then fails the run")
    func prefixCachingOff() async throws {
        let page = """
        vllm:cache_config_info{block_size="16",enable_prefix_caching="False",num_gpu_blocks="4096"} 1.0
        vllm:prefix_cache_queries_total{model_name="meta-llama/Llama-3.2-3B-Instruct"} 0.0
        vllm:prefix_cache_hits_total{model_name="meta-llama/Llama-3.2-3B-Instruct"} 0.0

        """
        let engine = FakeServer(contentType: "text/plain; version=0.0.4") { _, path, _ in path.hasPrefix("/metrics") ? (200, page) : (200, "{}") }
        try await withSimCluster(engines: 1) { _, urls in
            try await engine.run { base in
                let (r, out) = try await validate(rampSettings(gateway: urls[0], metrics: [base], requests: 2))
                #expect(r.warnings.contains { $0.contains("prefix caching off") && $0.contains("enable_prefix_caching") }, "\(r.warnings)")
                #expect(out.all.contains { $0.hasPrefix("warning: ") && $0.contains("prefix caching off") })
                #expect(!r.passed && r.failures.contains { $0.contains("no prefix-cache queries") })
            }
        }
    }

    @Test("an unreachable engine is exit 4, naming it")
    func unreachableEngine() async throws {
        try await withSimCluster(engines: 1) { _, urls in
            let dead = "http://127.0.0.1:\(freePort())"
            let (code, reason) = await outcome(rampSettings(gateway: urls[0], metrics: [urls[0], dead]))
            #expect(code == 4)
            #expect(reason.contains(String(dead.dropFirst("http://".count))) && reason.contains("unreachable"), "\(reason)")
        }
    }

    @Test("Prometheus answering an error, nothing, or not JSON is exit 4 with the reason", arguments: [
        (400, #"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected character"}"#, "bad_data: 1:5: parse error"),
        (503, #"{"status":"error","errorType":"unavailable","error":"TSDB not ready"}"#, "TSDB not ready"),
        (200, #"{"status":"success","data":{"resultType":"vector","result":[]}}"#, "has no data for vllm:prefix_cache_queries_total"),
        (200, "<html>Grafana</html>", "without the query API's JSON"),
    ])
    func prometheusBroken(_ status: Int, _ body: String, _ mention: String) async throws {
        let prometheus = FakeServer { _, _, _ in (status, body) }
        try await withSimCluster(engines: 1) { _, urls in
            try await prometheus.run { base in
                var s = rampSettings(gateway: urls[0], metrics: urls, requests: 2)
                s.prometheusURL = base
                s.prometheusWaitSeconds = 0.5
                let (code, reason) = await outcome(s)
                #expect(code == 4)
                #expect(reason.contains(mention), "\(reason)")
                #expect(!reason.contains("\n"))
                #expect(prometheus.recorded.allSatisfy { $0.path.hasPrefix("/api/v1/query?query=") })
            }
        }
    }

    @Test("an unreachable Prometheus is exit 4")
    func prometheusUnreachable() async throws {
        try await withSimCluster(engines: 1) { _, urls in
            var s = rampSettings(gateway: urls[0], metrics: urls, requests: 2)
            s.prometheusURL = "http://127.0.0.1:\(freePort())"
            let (code, reason) = await outcome(s)
            #expect(code == 4)
            #expect(reason.hasPrefix("Prometheus at") && reason.contains("unreachable"), "\(reason)")
        }
    }

    @Test("settings a run cannot start with are exit 2", arguments: [
        (ValidationSettings(gatewayURL: "http://127.0.0.1:1"), "no engine metrics"),
        (ValidationSettings(gatewayURL: "127.0.0.1:1", metricsURLs: ["http://127.0.0.1:1"]), "not an http(s) URL"),
        (ValidationSettings(gatewayURL: "http://127.0.0.1:1", requests: 0, metricsURLs: ["http://127.0.0.1:1"]), "--requests"),
        (ValidationSettings(gatewayURL: "http://127.0.0.1:1", metricsURLs: ["127.0.0.1:1"]), "bad engine metrics URL"),
        (ValidationSettings(gatewayURL: "http://127.0.0.1:1", metricsURLs: ["http://127.0.0.1:1"], minHitRate: 2), "--min-hit-rate"),
        (ValidationSettings(gatewayURL: "http://127.0.0.1:1", prometheusURL: "prometheus:9090"), "--prometheus-url"),
    ])
    func usage(_ s: ValidationSettings, _ mention: String) async {
        let (code, reason) = await outcome(s)
        #expect(code == 2)
        #expect(reason.contains(mention), "\(reason)")
    }
}
