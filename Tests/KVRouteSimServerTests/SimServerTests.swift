import Foundation
import KVRouteEngineSim
import KVRouteSimServer
import KVRouteTestSupport
import NIOHTTP1
import Testing

let model = "meta-llama/Llama-3.2-3B-Instruct"

@Suite("Simulated engine over HTTP")
struct SimServerTests {
    @Test("the same ~1,000-token chat twice: ≥ 90 % cached on the second, and metric deltas equal usage")
    func repeatedPromptHits() async throws {
        try await withSimCluster { _, urls in
            let url = urls[0]
            let before = try await TestHTTP.request(url + "/metrics").body
            let body = longChatBody(systemWords: 720)
            let first = try #require(try await TestHTTP.postJSON(url + "/v1/chat/completions", body).json)
            let second = try await TestHTTP.postJSON(url + "/v1/chat/completions", body)
            #expect(second.status == 200)
            #expect(second.headers.first(name: "x-inference-pod") == "sim-0")
            let usage1 = try #require(first["usage"] as? [String: Any])
            let usage2 = try #require(second.json?["usage"] as? [String: Any])
            let prompt = try #require(usage2["prompt_tokens"] as? Int)
            let cached = try #require((usage2["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int)
            let cached1 = try #require((usage1["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int)
            #expect(prompt >= 900 && prompt <= 1200)
            #expect(Double(cached) >= 0.9 * Double(prompt))
            #expect(cached1 == 0)
            let after = try await TestHTTP.request(url + "/metrics").body
            let dq = TestHTTP.metricSum(after, "vllm:prefix_cache_queries_total") - TestHTTP.metricSum(before, "vllm:prefix_cache_queries_total")
            let dh = TestHTTP.metricSum(after, "vllm:prefix_cache_hits_total") - TestHTTP.metricSum(before, "vllm:prefix_cache_hits_total")
            #expect(Int(dq) == 2 * prompt)
            #expect(Int(dh) == cached1 + cached)
        }
    }

    @Test("SSE streaming: role first, one chunk per token, usage chunk, [DONE]; text equals the non-streamed answer")
    func streaming() async throws {
        try await withSimCluster { _, urls in
            for path in ["/v1/chat/completions", "/v1/completions"] {
                var body: [String: Any] = path.contains("chat")
                    ? longChatBody(maxTokens: 6, stream: true)
                    : ["model": model, "prompt": "Once upon a time there was a router", "max_tokens": 6, "stream": true, "stream_options": ["include_usage": true]]
                let streamed = try await TestHTTP.postJSON(urls[0] + path, body)
                #expect(streamed.status == 200)
                #expect(streamed.headers.first(name: "content-type") == "text/event-stream")
                let events = serverSentEvents(streamed.body).map(\.data)
                #expect(events.last == "[DONE]")
                let chunks = events.dropLast().compactMap { e -> [String: Any]? in
                    (try? JSONSerialization.jsonObject(with: Data(e.utf8))) as? [String: Any]
                }
                #expect(chunks.count == events.count - 1)
                let usage = try #require(chunks.last?["usage"] as? [String: Any])
                #expect(usage["completion_tokens"] as? Int == 6)
                var text = ""
                for c in chunks {
                    guard let choice = (c["choices"] as? [[String: Any]])?.first else { continue }
                    text += ((choice["delta"] as? [String: Any])?["content"] as? String) ?? (choice["text"] as? String) ?? ""
                }
                body["stream"] = false
                body["stream_options"] = nil
                let whole = try #require(try await TestHTTP.postJSON(urls[0] + path, body).json)
                let choice = try #require((whole["choices"] as? [[String: Any]])?.first)
                let expected = ((choice["message"] as? [String: Any])?["content"] as? String) ?? (choice["text"] as? String)
                #expect(text == expected)
                #expect(choice["finish_reason"] as? String == "length")
            }
        }
    }

    @Test("chunked request bodies are accepted (Envoy forwards bodies chunked)")
    func chunkedBody() async throws {
        try await withSimCluster { _, urls in
            let data = try JSONSerialization.data(withJSONObject: longChatBody(systemWords: 2000))
            let r = try await TestHTTP.request(urls[0] + "/v1/chat/completions", method: .POST, body: String(decoding: data, as: UTF8.self), chunked: true)
            #expect(r.status == 200)
            #expect(((r.json?["usage"] as? [String: Any])?["prompt_tokens"] as? Int ?? 0) > 1000)
        }
    }

    struct BadInput: Sendable, CustomTestStringConvertible {
        var name: String
        var path = "/v1/chat/completions"
        var body: String
        var contentType: String? = "application/json"
        var status: Int
        var message: String
        var testDescription: String { name }
    }

    static let longPrompt = String(repeating: "a", count: 4 * 40_000)
    static let badInputs: [BadInput] = [
        BadInput(name: "malformed JSON", body: "{\"model\": ", status: 400, message: "Invalid JSON"),
        BadInput(name: "not an object", body: "[1,2]", status: 400, message: "JSON object"),
        BadInput(name: "missing model", body: #"{"messages":[{"role":"user","content":"hi"}]}"#, status: 400, message: "model"),
        BadInput(name: "unknown model", body: #"{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}"#, status: 404, message: "gpt-9"),
        BadInput(name: "empty messages", body: #"{"model":"\#(model)","messages":[]}"#, status: 400, message: "at least one message"),
        BadInput(name: "messages not a list", body: #"{"model":"\#(model)","messages":"hi"}"#, status: 400, message: "list"),
        BadInput(name: "negative max_tokens", body: #"{"model":"\#(model)","messages":[{"role":"user","content":"hi"}],"max_tokens":-5}"#, status: 400, message: "max_tokens"),
        BadInput(name: "huge max_tokens", body: #"{"model":"\#(model)","messages":[{"role":"user","content":"hi"}],"max_tokens":100000000}"#, status: 400, message: "maximum context length"),
        BadInput(name: "prompt longer than the context", path: "/v1/completions", body: #"{"model":"\#(model)","prompt":"\#(longPrompt)"}"#, status: 400, message: "maximum context length"),
        BadInput(name: "missing prompt", path: "/v1/completions", body: #"{"model":"\#(model)"}"#, status: 400, message: "prompt"),
        BadInput(name: "wrong content type", body: #"{"model":"\#(model)"}"#, contentType: "text/plain", status: 415, message: "Content-Type"),
        BadInput(name: "body over the size limit", body: #"{"model":"\#(model)","prompt":"\#(String(repeating: "b", count: 2 << 20))"}"#, status: 413, message: "limit"),
        BadInput(name: "unknown endpoint", path: "/v1/nothing", body: "{}", status: 404, message: "Not Found"),
    ]

    @Test("bad input gets the OpenAI error JSON and the right 4xx", arguments: badInputs)
    func badInput(_ c: BadInput) async throws {
        try await withSimCluster { _, urls in
            let r = try await TestHTTP.request(urls[0] + c.path, method: .POST, body: c.body, contentType: c.contentType)
            #expect(r.status == c.status, "\(c.name): \(r.body.prefix(300))")
            let error = try #require(r.json?["error"] as? [String: Any], "\(c.name): \(r.body.prefix(300))")
            #expect(error["code"] as? Int == c.status)
            #expect((error["message"] as? String ?? "").contains(c.message), "\(c.name): \(error)")
            #expect(error["type"] is String)
            // The engine keeps serving after every bad request.
            let ok = try await TestHTTP.postJSON(urls[0] + "/v1/chat/completions", longChatBody(systemWords: 9))
            #expect(ok.status == 200)
        }
    }

    @Test("failure injection: forced status header, run-time fail rate, unhealthy, slow engine")
    func faults() async throws {
        try await withSimCluster { cluster, urls in
            let url = urls[0]
            let forced = try await TestHTTP.postJSON(url + "/v1/chat/completions", longChatBody(), headers: [("x-sim-fail-status", "503")])
            #expect(forced.status == 503)
            #expect(forced.json?["error"] != nil)
            let set = try await TestHTTP.request(url + "/admin/faults", method: .POST, body: #"{"fail_rate": 1, "fail_status": 502}"#)
            #expect(set.status == 200)
            #expect(try await TestHTTP.postJSON(url + "/v1/chat/completions", longChatBody()).status == 502)
            _ = try await TestHTTP.request(url + "/admin/faults", method: .POST, body: #"{"fail_rate": 0, "healthy": false}"#)
            #expect(try await TestHTTP.request(url + "/health").status == 503)
            _ = try await TestHTTP.request(url + "/admin/faults", method: .POST, body: #"{"healthy": true, "slowdown": 4}"#)
            #expect(try await TestHTTP.request(url + "/health").status == 200)
            #expect(cluster.servers[0].faultSettings.slowdown == 4)
            let bad = try await TestHTTP.request(url + "/admin/faults", method: .POST, body: #"{"fail_rate": 3}"#)
            #expect(bad.status == 400)
            #expect(try await TestHTTP.postJSON(url + "/v1/chat/completions", longChatBody()).status == 200)
        }
    }

    @Test("models, tokenize, health, reset, worker info")
    func infoRoutes() async throws {
        try await withSimCluster { _, urls in
            let url = urls[0]
            let models = try #require(try await TestHTTP.request(url + "/v1/models").json)
            #expect(((models["data"] as? [[String: Any]])?.first?["id"] as? String) == model)
            let tok = try #require(try await TestHTTP.postJSON(url + "/tokenize", ["model": model, "prompt": "abcdefgh"]).json)
            #expect(tok["count"] as? Int == 3)  // begin-of-text + 2
            #expect(try await TestHTTP.request(url + "/health").status == 200)
            let body = longChatBody(systemWords: 400)
            _ = try await TestHTTP.postJSON(url + "/v1/chat/completions", body)
            #expect(try await TestHTTP.request(url + "/reset_prefix_cache", method: .POST).status == 200)
            let after = try #require(try await TestHTTP.postJSON(url + "/v1/chat/completions", body).json)
            #expect(((after["usage"] as? [String: Any])?["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int == 0)
            #expect(try await TestHTTP.request(url + "/model_info").json?["model_path"] as? String == model)
            #expect(try await TestHTTP.request(url + "/server_info").json?["block_size"] as? Int == 16)
        }
    }

    @Test("a small KV pool under concurrent load evicts old prefixes (LRU) and fails no request")
    func smallPoolUnderLoad() async throws {
        try await withSimCluster(engine: testEngineConfiguration(numGPUBlocks: 200, maxNumSeqs: 16)) { cluster, urls in
            let url = urls[0]
            let old = longChatBody(systemWords: 900, user: "the old prefix")
            _ = try await TestHTTP.postJSON(url + "/v1/chat/completions", old)
            // 24 concurrent requests over 6 other ~300-token prefixes with 400-token answers:
            // ~45 blocks each at the end, so decode growth outruns the pool and forces preemption.
            let statuses = try await withThrowingTaskGroup(of: Int.self) { g in
                for i in 0..<24 {
                    g.addTask {
                        var b = longChatBody(systemWords: 270, user: "q\(i)", maxTokens: 400)
                        var msgs = b["messages"] as! [[String: String]]
                        msgs[0]["content"] = "Prefix \(i % 6). " + msgs[0]["content"]!
                        b["messages"] = msgs
                        return try await TestHTTP.postJSON(url + "/v1/chat/completions", b).status
                    }
                }
                return try await g.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses.allSatisfy { $0 == 200 }, "\(statuses)")
            let again = try #require(try await TestHTTP.postJSON(url + "/v1/chat/completions", old).json)
            let cached = ((again["usage"] as? [String: Any])?["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int
            #expect(cached == 0)
            let metrics = try await TestHTTP.request(url + "/metrics").body
            #expect(TestHTTP.metricSum(metrics, "vllm:num_preemptions_total") > 0)
            #expect(cluster.servers[0].runner.load().stats.preemptions > 0)
        }
    }

    @Test("several engines in one process answer on their own ports with their own names")
    func manyEngines() async throws {
        try await withSimCluster(engines: 3) { _, urls in
            var names: [String] = []
            for u in urls {
                let r = try await TestHTTP.postJSON(u + "/v1/chat/completions", longChatBody(systemWords: 9))
                names.append(r.headers.first(name: "x-inference-pod") ?? "")
            }
            #expect(names == ["sim-0", "sim-1", "sim-2"])
        }
    }
}
