import Foundation
import KVRouteSimServer
import KVRouteTestSupport
import Testing

/// The simulator against real peers: the official OpenAI Python client, promtool and a
/// Prometheus server scraping it.
@Suite("Simulated engine with real peers", .serialized)
struct SimPeerTests {
    @Test("the official openai Python client gets correct answers, streaming and not, on both endpoints",
          .enabled(if: ExternalTool.pythonWithOpenAI != nil || ExternalTool.peersRequired))
    func openAIClient() async throws {
        let python = try #require(ExternalTool.pythonWithOpenAI, "python3 with the openai package is not installed; run scripts/test.sh")
        let script = ExternalTool.repositoryRoot.appendingPathComponent("Tests/peers/openai_client_check.py").path
        try await withSimCluster { _, urls in
            let r = try await ExternalTool.runAsync(python, [script, "--base-url", urls[0] + "/v1"], timeout: 120)
            #expect(r.status == 0, "stdout: \(r.stdout)\nstderr: \(r.stderr.suffix(2000))")
            #expect(r.stdout.contains("\"ok\": true"))
        }
    }

    @Test("promtool parses /metrics without a parse error", .enabled(if: ExternalTool.available("promtool")))
    func promtoolParses() async throws {
        let promtool = try ExternalTool.require("promtool")
        try await withSimCluster { _, urls in
            _ = try await TestHTTP.postJSON(urls[0] + "/v1/chat/completions", longChatBody())
            let metrics = try await TestHTTP.request(urls[0] + "/metrics").body
            let r = try await ExternalTool.runAsync(promtool, ["check", "metrics"], stdin: metrics)
            let out = r.stdout + r.stderr
            // promtool's lint may object to ':' in vLLM's names; a parse error is a failure.
            #expect(!out.lowercased().contains("error while linting"), "\(out)")
            #expect(!out.lowercased().contains("parsing error"), "\(out)")
            let problems = out.split(separator: "\n").filter { !$0.contains("should not contain ':'") && !$0.isEmpty }
            #expect(problems.isEmpty, "promtool reported: \(problems)")
        }
    }

    @Test("a real Prometheus server scrapes three engines and sees their prefix-cache counters",
          .enabled(if: ExternalTool.available("prometheus")))
    func prometheusScrapes() async throws {
        let prometheus = try ExternalTool.require("prometheus")
        try await withSimCluster(engines: 3) { _, urls in
            for u in urls { _ = try await TestHTTP.postJSON(u + "/v1/chat/completions", longChatBody()) }
            let server = try PrometheusServer(binary: prometheus, targets: urls)
            defer { server.stop() }
            let value = try await server.waitForQuery("sum(vllm:prefix_cache_queries_total)", atLeast: 1)
            var direct = 0.0
            for u in urls { direct += TestHTTP.metricSum(try await TestHTTP.request(u + "/metrics").body, "vllm:prefix_cache_queries_total") }
            #expect(value == direct)
            let up = try await server.query("count(up == 1)")
            #expect(up == 3)
        }
    }
}
