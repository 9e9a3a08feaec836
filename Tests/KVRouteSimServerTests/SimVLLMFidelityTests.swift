import Foundation
import KVRouteEngineSim
import KVRouteSimServer
import KVRouteTestSupport
import Testing

/// The HTTP answers vLLM 0.32 gives, checked against its serving code
/// (entrypoints/openai/{chat_completion,completion}/serving.py, serve/dev/cache/api_router.py).
@Suite("Simulated engine answers as vLLM 0.32")
struct SimVLLMFidelityTests {
    static func withSim<T: Sendable>(
        details: Bool, engine: EngineConfiguration = testEngineConfiguration(), timeScale: Double = 0.05,
        _ body: @Sendable (String) async throws -> T
    ) async throws -> T {
        let cluster = try SimCluster(
            engines: 1, basePort: 0, engine: engine, timeScale: timeScale,
            server: .init(podName: "sim", enablePromptTokensDetails: details), logger: quietLogger)
        return try await withServices(cluster.services) {
            let ports = await cluster.waitUntilListening()
            return try await body("http://127.0.0.1:\(ports[0])")
        }
    }

    static func chunks(_ body: String) -> [[String: Any]] {
        serverSentEvents(body).map(\.data).filter { $0 != "[DONE]" }.compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
    }

    @Test("cached_tokens only with --enable-prompt-tokens-details: null in a full answer, absent from a stream's usage", arguments: [false, true])
    func promptTokensDetails(enabled: Bool) async throws {
        try await Self.withSim(details: enabled) { url in
            let body = longChatBody(systemWords: 200)
            _ = try await TestHTTP.postJSON(url + "/v1/chat/completions", body)
            let full = try #require(try await TestHTTP.postJSON(url + "/v1/chat/completions", body).json)
            let usage = try #require(full["usage"] as? [String: Any])
            #expect(usage["prompt_tokens"] as? Int ?? 0 > 200)
            if enabled {
                let cached = (usage["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int
                #expect(cached ?? 0 > 100)
            } else {
                #expect(usage.keys.contains("prompt_tokens_details"))
                #expect(usage["prompt_tokens_details"] is NSNull)
            }
            let streamed = try await TestHTTP.postJSON(url + "/v1/chat/completions", longChatBody(systemWords: 200, stream: true))
            let last = try #require(Self.chunks(streamed.body).last?["usage"] as? [String: Any])
            #expect(last.keys.contains("prompt_tokens_details") == enabled)
        }
    }

    @Test("stream chunks carry no \"usage\": null; only the final usage chunk has usage")
    func noUsageNullInChunks() async throws {
        try await Self.withSim(details: true) { url in
            for path in ["/v1/chat/completions", "/v1/completions"] {
                let body: [String: Any] = path.contains("chat")
                    ? longChatBody(maxTokens: 5, stream: true)
                    : ["model": model, "prompt": "Once upon a time", "max_tokens": 5, "stream": true, "stream_options": ["include_usage": true]]
                let res = try await TestHTTP.postJSON(url + path, body)
                #expect(!res.body.contains("\"usage\":null"))
                let chunks = Self.chunks(res.body)
                #expect(chunks.count >= 6)
                #expect(chunks.dropLast().allSatisfy { $0["usage"] == nil }, "\(path)")
                #expect(chunks.last?["usage"] is [String: Any])
                #expect((chunks.last?["choices"] as? [Any])?.isEmpty == true)
            }
        }
    }

    @Test("POST /reset_prefix_cache answers {success}: false while a request holds blocks, true once idle or with reset_running_requests")
    func resetRefusedWhileBusy() async throws {
        try await Self.withSim(details: true, timeScale: 1) { url in
            let idle = try await TestHTTP.request(url + "/reset_prefix_cache", method: .POST)
            #expect(idle.status == 200 && idle.json?["success"] as? Bool == true)
            let long = Task { try await TestHTTP.postJSON(url + "/v1/completions", ["model": model, "prompt": "a long answer", "max_tokens": 400]) }
            var running = 0.0
            for _ in 0..<200 where running < 1 {
                try await Task.sleep(for: .milliseconds(20))
                running = TestHTTP.metricSum(try await TestHTTP.request(url + "/metrics").body, "vllm:num_requests_running")
            }
            #expect(running == 1)
            let busy = try await TestHTTP.request(url + "/reset_prefix_cache", method: .POST)
            #expect(busy.status == 200 && busy.json?["success"] as? Bool == false)
            let forced = try await TestHTTP.request(url + "/reset_prefix_cache?reset_running_requests=true", method: .POST)
            #expect(forced.json?["success"] as? Bool == true)
            // The preempted request is recomputed and still finishes whole.
            let answer = try await long.value
            #expect(answer.status == 200)
            #expect((answer.json?["usage"] as? [String: Any])?["completion_tokens"] as? Int == 400)
            let metrics = try await TestHTTP.request(url + "/metrics").body
            #expect(TestHTTP.metricSum(metrics, "vllm:num_preemptions_total") == 1)
        }
    }

    @Test("an answer ending on the end-of-sequence token: finish_reason stop, the token counted, not shown")
    func endOfSequence() async throws {
        var engine = testEngineConfiguration()
        engine.endOfSequenceProbability = 1
        try await Self.withSim(details: false, engine: engine) { url in
            let chat = try #require(try await TestHTTP.postJSON(url + "/v1/chat/completions", longChatBody(maxTokens: 8)).json)
            let choice = try #require((chat["choices"] as? [[String: Any]])?.first)
            #expect(choice["finish_reason"] as? String == "stop")
            #expect((choice["message"] as? [String: Any])?["content"] as? String == "")
            #expect((chat["usage"] as? [String: Any])?["completion_tokens"] as? Int == 1)
            let streamed = try await TestHTTP.postJSON(url + "/v1/completions", [
                "model": model, "prompt": "Once", "max_tokens": 8, "stream": true, "stream_options": ["include_usage": true]])
            let chunks = Self.chunks(streamed.body)
            let finish = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String }
            #expect(finish == ["stop"])
            #expect(chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["text"] as? String }.joined() == "")
            let ignoring = try #require(try await TestHTTP.postJSON(url + "/v1/completions", [
                "model": model, "prompt": "Once", "max_tokens": 8, "ignore_eos": true]).json)
            #expect((ignoring["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String == "length")
            #expect((ignoring["usage"] as? [String: Any])?["completion_tokens"] as? Int == 8)
        }
    }
}
