import Foundation
import KVRouteCore
import KVRouteTestSupport
import Testing
@testable import KVRouteExtProc

/// Real Envoy 1.40 with the shipped configurations: the primary the picker names refuses,
/// Envoy retries on the picker's fallback, and the response headers bring the picker the
/// `upstream.address` that served, so its bookkeeping (in-flight count, prefix index,
/// session token, routed-requests metric) follows the request to the fallback.
@Suite("kvroute epp behind real Envoy: the engine that served", .serialized,
       .enabled(if: EnvoyProcess.binary != nil || ExternalTool.peersRequired))
struct EnvoyServedEndpointTests {
    @Test("a refusing primary is retried on the fallback; the picker learns the fallback served",
          arguments: [("envoy-epp.yaml", "BUFFERED"), ("envoy-epp-full-duplex.yaml", "NONE")])
    func fallbackServed(_ config: String, _ mode: String) async throws {
        let refusing = EchoEngine(refusing: true)
        try await withServices([refusing.application]) {
            try await waitForPort(refusing.port)
            try await withSimCluster(engines: 1) { _, sims in
                let engines = [refusing.url] + sims
                try await withPicker(engines: engines) { picker in
                    let c = picker.configuration
                    let envoy = try EnvoyProcess(config: config, eppPort: c.grpcPort, eppHealthPort: c.healthPort, engines: engines, requestBodyMode: mode)
                    defer { envoy.stop() }
                    try await envoy.waitReady()
                    let primary = try #require(EndpointAddress(refusing.address))
                    let fallback = try #require(EndpointAddress(sims[0].replacingOccurrences(of: "http://", with: "")))
                    let body = chat(system: sharedPrefix(3, tokens: 400), user: "Which engine answers?")

                    // The session token names the refusing engine: the picker makes it the primary.
                    let r = try await TestHTTP.postJSON(envoy.url + "/v1/chat/completions", body,
                                                        headers: [("x-session-token", SessionAffinityScorer.token(for: primary))])
                    #expect(r.status == 200, "\(config): \(r.status) \(r.body.prefix(300))")
                    #expect(refusing.completions.load(ordering: .relaxed) == 1, "the primary was tried first")
                    #expect(r.headers.first(name: "x-upstream-host") == fallback.description)
                    #expect(r.headers.first(name: "x-session-token") == SessionAffinityScorer.token(for: fallback),
                            "the answer's session token names the engine that served")

                    // The stream ends after the answer: the bookkeeping settles on the fallback.
                    let router = picker.service.router
                    var metrics = ""
                    for _ in 0..<100 {
                        metrics = String(decoding: picker.metrics.render(), as: UTF8.self)
                        if router.scheduler.inFlightTotal == 0, metrics.contains("kvroute_requests_routed_total{endpoint=\"\(fallback)\"} 1") { break }
                        try await Task.sleep(for: .milliseconds(20))
                    }
                    #expect(router.scheduler.inFlightTotal == 0)
                    #expect(metrics.contains("kvroute_requests_routed_total{endpoint=\"\(fallback)\"} 1"), "\(metrics.split(separator: "\n").filter { $0.contains("routed") })")
                    #expect(!metrics.contains("kvroute_requests_routed_total{endpoint=\"\(primary)\"}"))

                    // The prefix index learned the fallback holds the prompt: the same prompt,
                    // without a session, goes there.
                    let json = try JSONSerialization.data(withJSONObject: body)
                    let parsed = try OpenAIRequestParser.parse(body: Array(json), apiKind: .chatCompletions)
                    let next = try router.route(InferenceRequest(requestID: "next", model: parsed.model, prompt: parsed.prompt))
                    #expect(next.primary == fallback)
                    #expect((next.decision.result?.explanation.matchedPrefixBlocks ?? 0) > 0)
                    next.finished(servedBy: nil, outcome: .abandoned)
                }
            }
        }
    }
}
