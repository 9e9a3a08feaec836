import Foundation
import KVRouteCore
@testable import KVRouteExtProc
import KVRouteProto
import KVRouteTestSupport
import Testing

/// `kvroute epp` with the predicted-latency profile: SLO headers reach the picker, a shed
/// request is answered 429 by Envoy with an OpenAI error, and the ledger learns the time to
/// first byte from the response side when Envoy sends it.
@Suite("kvroute epp: predicted latency", .serialized)
struct ExtProcPredictedLatencyTests {
    typealias T = ExtProcServiceTests

    typealias Fixtures = PredictedLatencyFixtures

    @Test("a sheddable request no engine can serve in time: an immediate 429 with an OpenAI error body; another objective is routed")
    func shed() async throws {
        try await withSimCluster(engines: 2) { _, urls in
            try await withPicker(engines: urls, configure: { $0.pickerConfig = Fixtures.shedding }) { picker in
                let port = picker.configuration.grpcPort
                let impossible = [("x-slo-ttft-ms", "0.001"), ("x-gateway-inference-objective", "batch")]
                let out = try await T.exchange(port, [T.headers(impossible, mode: .buffered), T.body(T.chatBody)])
                let refused = try #require(out.last?.immediateResponse)
                #expect(refused.status.code == .tooManyRequests)
                let json = try #require(try JSONSerialization.jsonObject(with: Data(refused.body.utf8)) as? [String: Any])
                let error = try #require(json["error"] as? [String: Any])
                #expect(error["type"] as? String == "RateLimitError")
                #expect(error["code"] as? Int == 429)
                let chat = [("x-slo-ttft-ms", "0.001"), ("x-gateway-inference-objective", "chat")]
                let routed = try await T.exchange(port, [T.headers(chat, mode: .buffered), T.body(T.chatBody)])
                #expect(T.destination(try #require(routed.last).requestBody.response) != nil)
            }
        }
    }

    static func responseHeaders(contentType: String) -> ProcessingRequest {
        var r = ProcessingRequest()
        var h = Envoy_Config_Core_V3_HeaderValue()
        h.key = "content-type"
        h.rawValue = Data(contentType.utf8)
        r.responseHeaders.headers.headers = [h]
        return r
    }

    static func responseBody(_ text: String, endOfStream: Bool) -> ProcessingRequest {
        var r = ProcessingRequest()
        r.responseBody.body = Data(text.utf8)
        r.responseBody.endOfStream = endOfStream
        return r
    }

    @Test("response side seen: a whole answer's first byte is its headers, a stream's its first body chunk; the ledger learns which")
    func firstByte() async throws {
        try await withSimCluster(engines: 1) { _, urls in
            try await withPicker(engines: urls, configure: { $0.pickerConfig = .builtIn("predicted-latency")! }) { picker in
                let scheduler = picker.service.router.scheduler
                Fixtures.record(scheduler)
                let port = picker.configuration.grpcPort
                let usage = #"{"usage":{"prompt_tokens":12,"completion_tokens":3}}"#
                _ = try await T.exchange(port, [
                    T.headers([], mode: .buffered, responseMode: .streamed), T.body(T.chatBody),
                    Self.responseHeaders(contentType: "application/json"), Self.responseBody(usage, endOfStream: true)])
                _ = try await T.exchange(port, [
                    T.headers([], mode: .buffered, responseMode: .streamed), T.body(T.chatBody),
                    Self.responseHeaders(contentType: "text/event-stream"), Self.responseBody("data: {}\n\n", endOfStream: false),
                    Self.responseBody("data: \(usage)\n\ndata: [DONE]\n\n", endOfStream: true)])
                let outcomes = Fixtures.outcomes(scheduler)
                try #require(outcomes.count == 2)
                #expect(outcomes.map(\.streamed) == [false, true])
                #expect(outcomes.allSatisfy { $0.timeToFirstByte != nil })
                #expect(outcomes.map(\.promptTokens) == [12, 12])
            }
        }
    }
}
