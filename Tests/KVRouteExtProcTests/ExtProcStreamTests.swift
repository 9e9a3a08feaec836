import KVRouteExtProc
import Testing

@Suite("ext_proc stream phases")
struct ExtProcStreamTests {
    let headers = [(":method", "POST"), (":path", "/v1/chat/completions"), ("x-session-id", "s1"),
                   ("x-gateway-destination-endpoint", "10.0.0.1:80"), ("X-Gateway-Destination-Endpoint-Subset", "10.0.0.1:80")]

    @Test("headers only and STREAMED decide from the headers; forged routing headers are listed for removal",
          arguments: [ExtProcStream.BodyMode.none, .streamed])
    func decideAtHeaders(_ mode: ExtProcStream.BodyMode) {
        var s = ExtProcStream()
        guard case .decide(let info, let body, let phase) = s.requestHeaders(headers, session: "s1", endOfStream: false, requestMode: mode, responseMode: .none) else {
            Issue.record("expected a decision")
            return
        }
        #expect(phase == .headers)
        #expect(body.isEmpty)
        #expect(info.path == "/v1/chat/completions")
        #expect(info.sessionKey == "s1")
        #expect(info.forgedHeaders == ["x-gateway-destination-endpoint", "x-gateway-destination-endpoint-subset"])
        #expect(info.headers["x-gateway-destination-endpoint"] == nil)
        #expect(s.requestBody([1, 2], endOfStream: true) == .continueRequestBody)
    }

    @Test("a request without a body is decided at the headers whatever the mode", arguments: ExtProcStream.BodyMode.allCases)
    func noBody(_ mode: ExtProcStream.BodyMode) {
        var s = ExtProcStream()
        guard case .decide(_, _, .headers) = s.requestHeaders(headers, session: nil, endOfStream: true, requestMode: mode, responseMode: .none) else {
            Issue.record("expected a decision at the headers")
            return
        }
        #expect(s.requestMode == .none)
    }

    @Test("BUFFERED: the headers continue (forged headers removed), the body message decides, answered in the body")
    func buffered() {
        var s = ExtProcStream()
        #expect(s.requestHeaders(headers, session: nil, endOfStream: false, requestMode: .buffered, responseMode: .none)
            == .continueRequestHeaders(removeHeaders: ["x-gateway-destination-endpoint", "x-gateway-destination-endpoint-subset"]))
        // One buffered message carries the whole body, even when trailers follow.
        guard case .decide(_, let body, .body) = s.requestBody(Array("{}".utf8), endOfStream: false) else {
            Issue.record("expected a decision in the body phase")
            return
        }
        #expect(body == Array("{}".utf8))
        #expect(s.requestTrailers() == .continueRequestTrailers)
    }

    @Test("FULL_DUPLEX_STREAMED: headers and chunks are held until the body ends, then headers and body are answered")
    func fullDuplex() {
        var s = ExtProcStream()
        #expect(s.requestHeaders(headers, session: nil, endOfStream: false, requestMode: .fullDuplex, responseMode: .fullDuplex) == .hold)
        #expect(s.requestBody(Array("{\"a\":".utf8), endOfStream: false) == .hold)
        #expect(s.requestBody([], endOfStream: false) == .hold)
        guard case .decide(_, let body, .headersThenBody(trailers: false)) = s.requestBody(Array("1}".utf8), endOfStream: true) else {
            Issue.record("expected a decision")
            return
        }
        #expect(String(decoding: body, as: UTF8.self) == "{\"a\":1}")
        #expect(s.decided)
    }

    @Test("FULL_DUPLEX_STREAMED with trailers: the trailers end the body")
    func fullDuplexTrailers() {
        var s = ExtProcStream()
        _ = s.requestHeaders(headers, session: nil, endOfStream: false, requestMode: .fullDuplex, responseMode: .none)
        #expect(s.requestBody(Array("{}".utf8), endOfStream: false) == .hold)
        guard case .decide(_, let body, .headersThenBody(trailers: true)) = s.requestTrailers() else {
            Issue.record("expected a decision at the trailers")
            return
        }
        #expect(body == Array("{}".utf8))
    }

    @Test("a body over the limit is refused with 413")
    func tooLarge() {
        var s = ExtProcStream()
        _ = s.requestHeaders(headers, session: nil, endOfStream: false, requestMode: .fullDuplex, responseMode: .none)
        guard case .reject(413, _) = s.requestBody([UInt8](repeating: 32, count: ExtProcStream.maxBodyBytes + 1), endOfStream: false) else {
            Issue.record("expected a 413")
            return
        }
    }

    @Test("out-of-order messages are protocol errors")
    func outOfOrder() {
        var s = ExtProcStream()
        guard case .protocolError = s.requestBody([1], endOfStream: true) else {
            Issue.record("expected a protocol error")
            return
        }
        _ = s.requestHeaders(headers, session: nil, endOfStream: true, requestMode: .none, responseMode: .none)
        guard case .protocolError = s.requestHeaders(headers, session: nil, endOfStream: true, requestMode: .none, responseMode: .none) else {
            Issue.record("expected a protocol error")
            return
        }
    }

    @Test("response: chunks pass (echoed in full duplex), the tail is kept for usage, the end is noticed")
    func response() {
        var s = ExtProcStream()
        _ = s.requestHeaders(headers, session: nil, endOfStream: true, requestMode: .none, responseMode: .fullDuplex)
        #expect(s.responseHeaders(endOfStream: false) == .continueResponseHeaders)
        #expect(s.responseBody([1, 2], endOfStream: false) == .continueResponseBody(echo: [1, 2], endOfStream: false))
        #expect(!s.responseComplete)
        #expect(s.responseBody([3], endOfStream: true) == .continueResponseBody(echo: [3], endOfStream: true))
        #expect(s.responseComplete)
        #expect(s.responseTail == [1, 2, 3])

        var streamed = ExtProcStream()
        _ = streamed.requestHeaders(headers, session: nil, endOfStream: true, requestMode: .none, responseMode: .streamed)
        #expect(streamed.responseBody([UInt8](repeating: 7, count: ExtProcStream.responseTailBytes + 10), endOfStream: true)
            == .continueResponseBody(echo: nil, endOfStream: true))
        #expect(streamed.responseTail.count == ExtProcStream.responseTailBytes)
    }
}
