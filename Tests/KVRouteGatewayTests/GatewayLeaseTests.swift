import Foundation
import KVRouteCore
import KVRouteGateway
import KVRouteRouting
import KVRouteTestSupport
import Testing

/// The gateway over its RequestRouter: what a retry teaches the routing core, and the session
/// token on answers.
@Suite("Gateway leases", .serialized)
struct GatewayLeaseTests {
    @Test("primary refuses connections → a fallback serves → the routing core holds the prompt on the fallback, and the answer's session token names it")
    func retryTeachesFallback() async throws {
        let a = try await FakeEngine(.ok()), b = try await FakeEngine(.ok())
        defer { Task { await b.stop() } }
        // Probes far apart: the dead primary stays healthy in the pool, as between two probes.
        try await withTestGateway(fakeConfiguration([a, b], policy: .kvrouteDefault, probe: .seconds(60))) { gateway, gw in
            let scheduler = gateway.router.scheduler
            let primary = try #require(EndpointAddress(a.address)), fallback = try #require(EndpointAddress(b.address))
            await a.stop()
            let system = String(repeating: "A long system prompt shared by the whole conversation. ", count: 40)
            let body: [String: Any] = ["model": "m", "max_tokens": 4, "messages": [["role": "system", "content": system], ["role": "user", "content": "hello"]]]
            // The session token makes the dead engine the primary.
            let r = try await TestHTTP.postJSON(gw + "/v1/chat/completions", body, headers: [("x-session-token", SessionAffinityScorer.token(for: primary))])
            #expect(r.status == 200, "\(r.body)")
            #expect(r.headers.first(name: "x-upstream-host") == b.address)
            #expect(r.headers.first(name: "x-session-token") == SessionAffinityScorer.token(for: fallback))
            let metrics = try await TestHTTP.request(gw + "/metrics").body
            #expect(TestHTTP.metricSum(metrics, "kvroute_upstream_retries_total") == 1, "the primary was not the dead engine")
            #expect(scheduler.inFlightTotal == 0)

            // The next request with the same prompt prefers the engine that served it.
            let next = try gateway.router.route(InferenceRequest(
                requestID: "next", model: "m", prompt: .messages([ChatMessage(role: "system", content: system), ChatMessage(role: "user", content: "again")])))
            #expect(next.primary == fallback)
            #expect((next.decision.result?.explanation.matchedPrefixBlocks ?? 0) > 0)
            next.finished(servedBy: nil, outcome: .abandoned)
            #expect(scheduler.inFlightTotal == 0)
        }
    }

    @Test("every answer carries x-session-token naming the engine that served it")
    func sessionTokenOnAnswers() async throws {
        let e = try await FakeEngine(.ok())
        defer { Task { await e.stop() } }
        try await withTestGateway(fakeConfiguration([e], policy: .roundRobin)) { _, gw in
            let r = try await TestHTTP.postJSON(gw + "/v1/chat/completions", chat)
            #expect(r.status == 200)
            let token = try #require(r.headers.first(name: "x-session-token"))
            #expect(String(decoding: Data(base64Encoded: token) ?? Data(), as: UTF8.self) == e.address)
        }
    }
}
