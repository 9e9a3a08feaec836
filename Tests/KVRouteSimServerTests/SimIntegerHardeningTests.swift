import Foundation
import KVRouteSimServer
import KVRouteTestSupport
import Testing

/// Integers a client sends — max_tokens, n, token ids, min_tokens, logprobs, seed — at and
/// past the edges of Int64: each is a 400 with vLLM's error JSON or is accepted; none traps.
@Suite("Simulated engine: client integers at the edges")
struct SimIntegerHardeningTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var path = "/v1/chat/completions"
        /// JSON members added to a valid body.
        var fields: String
        var prompt: String?
        var status: Int
        var message: String
        var param: String?
        var testDescription: String { name }
    }

    static let chat = #""messages":[{"role":"user","content":"hi"}]"#

    static let cases: [Case] = [
        Case(name: "max_tokens Int64.max", fields: #""max_tokens":9223372036854775807"#, status: 400, message: "9223372036854775807 in the completion", param: "max_tokens"),
        Case(name: "max_tokens Int64.max - 5", fields: #""max_tokens":9223372036854775802"#, status: 400, message: "maximum context length", param: "max_tokens"),
        Case(name: "max_completion_tokens Int64.max", fields: #""max_completion_tokens":9223372036854775807"#, status: 400, message: "maximum context length", param: "max_tokens"),
        Case(name: "max_tokens UInt64.max", fields: #""max_tokens":18446744073709551615"#, status: 400, message: "maximum context length", param: "max_tokens"),
        Case(name: "max_tokens 1e23 written out", fields: #""max_tokens":99999999999999999999999"#, status: 400, message: "maximum context length", param: "max_tokens"),
        Case(name: "max_tokens 1e300", fields: #""max_tokens":1e300"#, status: 400, message: "maximum context length", param: "max_tokens"),
        Case(name: "max_tokens Int64.min", fields: #""max_tokens":-9223372036854775808"#, status: 400, message: "at least 1", param: "max_tokens"),
        Case(name: "max_tokens 2.5", fields: #""max_tokens":2.5"#, status: 400, message: "integer", param: "max_tokens"),
        Case(name: "max_tokens true", fields: #""max_tokens":true"#, status: 400, message: "integer", param: "max_tokens"),
        Case(name: "completions: Int64.max with token ids", path: "/v1/completions", fields: #""max_tokens":9223372036854775807"#, prompt: "[1,2,3]", status: 400, message: "maximum context length", param: "max_tokens"),
        Case(name: "token id past UInt32", path: "/v1/completions", fields: #""max_tokens":2"#, prompt: "[1,4294967296]", status: 400, message: "token ids", param: "prompt"),
        Case(name: "token id 1e300", path: "/v1/completions", fields: #""max_tokens":2"#, prompt: "[1,1e300]", status: 400, message: "token ids", param: "prompt"),
        Case(name: "token id 1.5", path: "/v1/completions", fields: #""max_tokens":2"#, prompt: "[1,1.5]", status: 400, message: "token ids", param: "prompt"),
        Case(name: "token id Int64.min", path: "/v1/completions", fields: #""max_tokens":2"#, prompt: "[1,-9223372036854775808]", status: 400, message: "token ids", param: "prompt"),
        Case(name: "n 1e300", fields: #""n":1e300"#, status: 400, message: "n = 1", param: "n"),
        Case(name: "n 1.5", fields: #""n":1.5"#, status: 400, message: "integer", param: "n"),
        Case(name: "n 0", fields: #""n":0"#, status: 400, message: "at least 1", param: "n"),
        Case(name: "n Int64.min", fields: #""n":-9223372036854775808"#, status: 400, message: "at least 1", param: "n"),
        Case(name: "min_tokens Int64.max", fields: #""max_tokens":4,"min_tokens":9223372036854775807"#, status: 400, message: "less than or equal to max_tokens", param: "min_tokens"),
        Case(name: "min_tokens negative", fields: #""min_tokens":-1"#, status: 400, message: "greater than or equal to 0", param: "min_tokens"),
        Case(name: "completions logprobs UInt64.max", path: "/v1/completions", fields: #""max_tokens":2,"logprobs":18446744073709551615"#, status: 400, message: "max allowed", param: "logprobs"),
        Case(name: "top_logprobs Int64.min", fields: #""logprobs":true,"top_logprobs":-9223372036854775808"#, status: 400, message: "non-negative", param: "top_logprobs"),
        Case(name: "seed past UInt64", fields: #""seed":18446744073709551616"#, status: 400, message: "seed", param: "seed"),
        Case(name: "seed 1.5", fields: #""seed":1.5"#, status: 400, message: "integer", param: "seed"),
        Case(name: "seed Int64.max is fine", fields: #""max_tokens":2,"seed":9223372036854775807"#, status: 200, message: ""),
        Case(name: "seed Int64.min is fine", fields: #""max_tokens":2,"seed":-9223372036854775808"#, status: 200, message: ""),
        Case(name: "n 1, min_tokens 2, top_logprobs 20 are fine", fields: #""max_tokens":4,"n":1,"min_tokens":2,"logprobs":true,"top_logprobs":20"#, status: 200, message: ""),
        Case(name: "completions logprobs 5 is fine", path: "/v1/completions", fields: #""max_tokens":2,"logprobs":5"#, status: 200, message: ""),
    ]

    @Test("each value is answered, never a crash", arguments: cases)
    func integers(_ c: Case) async throws {
        try await withSimCluster { _, urls in
            let model = "meta-llama/Llama-3.2-3B-Instruct"
            let promptField = c.path.contains("chat") ? Self.chat : #""prompt":\#(c.prompt ?? #""hi""#)"#
            let body = #"{"model":"\#(model)",\#(promptField),\#(c.fields)}"#
            let r = try await TestHTTP.request(urls[0] + c.path, method: .POST, body: body)
            #expect(r.status == c.status, "\(r.body.prefix(400))")
            if c.status != 200 {
                let error = try #require(r.json?["error"] as? [String: Any], "\(r.body.prefix(400))")
                #expect(error["code"] as? Int == c.status)
                #expect(error["type"] as? String == "BadRequestError")
                #expect((error["message"] as? String ?? "").contains(c.message), "\(error)")
                if let p = c.param { #expect(error["param"] as? String == p, "\(error)") }
            }
            // The engine is still up and serving.
            let ok = try await TestHTTP.postJSON(urls[0] + "/v1/chat/completions", longChatBody(systemWords: 9))
            #expect(ok.status == 200)
        }
    }

    @Test("fault delays and slowdown past what a Duration holds are refused", arguments: [
        #"{"extra_latency_ms": 1e300}"#, #"{"stall_ms": 1e300, "stall_rate": 1}"#, #"{"slowdown": 1e300}"#, #"{"extra_latency_ms": -1}"#,
    ])
    func faultBounds(_ patch: String) async throws {
        try await withSimCluster { _, urls in
            let r = try await TestHTTP.request(urls[0] + "/admin/faults", method: .POST, body: patch)
            #expect(r.status == 400, "\(r.body.prefix(300))")
            #expect(r.json?["error"] != nil)
            let ok = try await TestHTTP.postJSON(urls[0] + "/v1/chat/completions", longChatBody(systemWords: 9))
            #expect(ok.status == 200)
        }
    }
}
