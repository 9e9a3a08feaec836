import KVRouteExtProc
import KVRouteRouting
import Testing

@Suite("usage read from response bodies")
struct ResponseUsageTests {
    @Test("a JSON answer")
    func json() {
        let body = #"{"id":"x","choices":[{"message":{"content":"a \"usage\": {"}}],"usage":{"prompt_tokens":120,"completion_tokens":8,"total_tokens":128,"prompt_tokens_details":{"cached_tokens":96}}}"#
        #expect(ResponseUsage.parse(tail: Array(body.utf8)) == ResponseUsage(promptTokens: 120, completionTokens: 8, cachedTokens: 96))
    }

    @Test("an SSE stream: the last event with usage, after chunks with \"usage\": null")
    func sse() {
        let body = """
        data: {"choices":[{"delta":{"content":"hi"}}],"usage":null}

        data: {"choices":[],"usage":{"prompt_tokens":50,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":48}}}

        data: [DONE]


        """
        #expect(ResponseUsage.parse(tail: Array(body.utf8)) == ResponseUsage(promptTokens: 50, completionTokens: 2, cachedTokens: 48))
    }

    @Test("no usage, a cut-off object, or not JSON", arguments: [#"{"choices":[]}"#, #"{"usage":{"prompt_tokens":5"#, "garbage", ""])
    func none(_ body: String) {
        #expect(ResponseUsage.parse(tail: Array(body.utf8)) == nil)
    }
}
