import Foundation
import KVRouteSimServer
import KVRouteTestSupport
import Testing

/// The misbehaving-engine modes of `/admin/faults`, seen from the wire.
@Suite("Simulated engine failure modes")
struct SimFaultTests {
    static func body(stream: Bool = false) throws -> Data {
        try JSONSerialization.data(withJSONObject: longChatBody(maxTokens: 4, stream: stream))
    }

    static func setFaults(_ url: String, _ json: String) async throws {
        let r = try await TestHTTP.request(url + "/admin/faults", method: .POST, body: json)
        #expect(r.status == 200, "\(json): \(r.body)")
    }

    static func port(_ url: String) -> Int { Int(url.split(separator: ":").last!)! }

    @Test("garbage_metrics spoils every sample of /metrics: NaN, infinities, negatives, huge and unparsable values")
    func garbageMetrics() async throws {
        try await withSimCluster { _, urls in
            let url = urls[0]
            let clean = try await TestHTTP.request(url + "/metrics").body
            #expect(!clean.contains("NaN") && !clean.contains(" twelve"))
            for (mode, mark) in [("nan", " NaN"), ("inf", " +Inf"), ("negative", " -"), ("huge", " 1.7976931348623157e308"), ("unparsable", " twelve")] {
                try await Self.setFaults(url, #"{"garbage_metrics": "\#(mode)"}"#)
                let text = try await TestHTTP.request(url + "/metrics").body
                let samples = text.split(separator: "\n").filter { !$0.hasPrefix("#") && $0.hasPrefix("vllm:") }
                #expect(!samples.isEmpty)
                #expect(text.contains(mark), "\(mode): \(text.prefix(400))")
                if mode != "unparsable" {
                    #expect(samples.allSatisfy { line in Double(line.split(separator: " ").last ?? "").map { !$0.isFinite || $0 < 0 || $0 > 1e18 } ?? true },
                            "\(mode): a sample kept a plausible value")
                }
            }
            try await Self.setFaults(url, #"{"garbage_metrics": "mixed"}"#)
            let a = try await TestHTTP.request(url + "/metrics").body, b = try await TestHTTP.request(url + "/metrics").body
            #expect(a != b, "mixed changes its garbage between scrapes")
            try await Self.setFaults(url, #"{"garbage_metrics": "off"}"#)
            #expect(!(try await TestHTTP.request(url + "/metrics").body.contains("NaN")))
            #expect(try await TestHTTP.request(url + "/admin/faults", method: .POST, body: #"{"garbage_metrics": "bogus"}"#).status == 400)
        }
    }

    @Test("drop_rate 1 closes the connection after the request without a byte of answer")
    func drop() async throws {
        try await withSimCluster { _, urls in
            try await Self.setFaults(urls[0], #"{"drop_rate": 1}"#)
            for stream in [false, true] {
                let r = await RawExchange.post(port: Self.port(urls[0]), body: try Self.body(stream: stream))
                #expect(r.closed && r.head == nil && r.body.isEmpty, "got \(r.head ?? "") \(r.body.count) bytes")
            }
            try await Self.setFaults(urls[0], #"{"drop_rate": 0}"#)
            #expect(try await TestHTTP.postJSON(urls[0] + "/v1/chat/completions", longChatBody()).status == 200)
        }
    }

    @Test("truncate_rate 1 announces more bytes than it sends, then closes")
    func truncate() async throws {
        try await withSimCluster { _, urls in
            try await Self.setFaults(urls[0], #"{"truncate_rate": 1}"#)
            for stream in [false, true] {
                let r = await RawExchange.post(port: Self.port(urls[0]), body: try Self.body(stream: stream))
                #expect(r.status == 200)
                let announced = try #require(r.contentLength)
                #expect(r.closed && r.body.count > 0 && r.body.count < announced, "\(r.body.count) of \(announced) bytes, closed \(r.closed)")
            }
        }
    }

    @Test("invalid_json_rate 1 answers 200 with a body that is not JSON, streamed or not")
    func invalidJSON() async throws {
        try await withSimCluster { _, urls in
            try await Self.setFaults(urls[0], #"{"invalid_json_rate": 1}"#)
            let plain = try await TestHTTP.postJSON(urls[0] + "/v1/chat/completions", longChatBody())
            #expect(plain.status == 200 && plain.json == nil)
            let sse = try await TestHTTP.postJSON(urls[0] + "/v1/chat/completions", longChatBody(stream: true))
            #expect(sse.status == 200)
            let events = serverSentEvents(sse.body).map(\.data).filter { $0.hasPrefix("{") }
            #expect(!events.isEmpty && events.allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) == nil })
        }
    }

    @Test("stall_rate 1 sends the headers and holds the body: for stall_ms, or until the engine shuts down", .timeLimit(.minutes(1)))
    func stall() async throws {
        try await withSimCluster { _, urls in
            let port = Self.port(urls[0])
            try await Self.setFaults(urls[0], #"{"stall_rate": 1, "stall_ms": 300}"#)
            let finite = await RawExchange.post(port: port, body: try Self.body(stream: true), timeout: 10)
            #expect(finite.status == 200 && finite.closed)
            #expect(String(decoding: finite.body, as: UTF8.self).contains("data: [DONE]"), "the stream resumes after the stall")

            try await Self.setFaults(urls[0], #"{"stall_ms": 0}"#)
            let forever = await RawExchange.post(port: port, body: try Self.body(), timeout: 1.5)
            #expect(forever.status == 200, "the headers leave before the stall")
            #expect(!forever.closed && forever.body.isEmpty, "no body while stalled: \(forever.body.count) bytes")
            // That request is still stalled in the engine: shutting it down must end the stall.
        }
    }

    @Test("rates outside [0, 1] and a negative stall are refused")
    func validation() async throws {
        try await withSimCluster { _, urls in
            for bad in [#"{"stall_rate": 2}"#, #"{"drop_rate": -0.1}"#, #"{"truncate_rate": 1.5}"#, #"{"invalid_json_rate": 7}"#, #"{"stall_ms": -5}"#] {
                #expect(try await TestHTTP.request(urls[0] + "/admin/faults", method: .POST, body: bad).status == 400, "\(bad)")
            }
            let current = try #require(try await TestHTTP.request(urls[0] + "/admin/faults").json)
            for key in ["stall_rate", "stall_ms", "invalid_json_rate", "truncate_rate", "drop_rate", "garbage_metrics"] {
                #expect(current[key] != nil, "\(key) missing from GET /admin/faults")
            }
        }
    }
}
