import Foundation
import KVRouteCore
import KVRouteGateway
import KVRouteRouting
import KVRouteTestSupport
import Testing

/// The gateway with the predicted-latency profile: SLO headers reach the picker, a shed
/// request answers 429 with an OpenAI error, and the ledger learns each answer's time to
/// first byte and whether it streamed.
@Suite("Gateway: predicted latency", .serialized)
struct GatewayPredictedLatencyTests {
    typealias Fixtures = PredictedLatencyFixtures

    @Test("SLO headers reach the picker: a sheddable request no engine can serve in time answers 429 with an OpenAI error; others are served")
    func shedAnswers429() async throws {
        let e = try await FakeEngine(.ok())
        defer { Task { await e.stop() } }
        try await withTestGateway(fakeConfiguration([e], policy: Fixtures.shedding)) { gateway, gw in
            let impossible = [("x-slo-ttft-ms", "0.001"), ("x-gateway-inference-objective", "batch")]
            let shed = try await post(gw, chat, headers: impossible)
            #expect(shed.status == 429)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(shed.body.utf8)) as? [String: Any])
            let error = try #require(json["error"] as? [String: Any])
            #expect(error["type"] as? String == "RateLimitError")
            #expect(error["code"] as? Int == 429)
            #expect((error["message"] as? String)?.contains("sheddable") == true)
            // The same SLO for an objective that may not be shed: best effort.
            let served = try await post(gw, chat, headers: [("x-slo-ttft-ms", "0.001"), ("x-gateway-inference-objective", "chat")])
            #expect(served.status == 200)
            #expect(gateway.router.scheduler.inFlightTotal == 0)
        }
    }

    @Test("the ledger learns the first byte of whole answers (their headers) and of streams (their first event), and which was which")
    func firstByteAndStreamed() async throws {
        let e = try await FakeEngine(.ok(delay: .milliseconds(20)))
        defer { Task { await e.stop() } }
        try await withTestGateway(fakeConfiguration([e], policy: .builtIn("predicted-latency")!)) { gateway, gw in
            Fixtures.record(gateway.router.scheduler)
            #expect(try await post(gw, chat).status == 200)
            #expect(try await post(gw, streamingChat).status == 200)
            let outcomes = Fixtures.outcomes(gateway.router.scheduler)
            try #require(outcomes.count == 2)
            #expect(outcomes.map(\.streamed) == [false, true])
            for o in outcomes {
                let ttfb = try #require(o.timeToFirstByte)
                #expect(ttfb >= 0.02)
            }
        }
    }
}
