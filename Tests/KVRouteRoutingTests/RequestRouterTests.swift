import KVRouteCore
import KVRouteRouting
import Testing

/// The route/lease bookkeeping in-process: in-flight counts, fallbacks that serve, headers-only
/// sessions, session tokens and metrics, over fixed snapshots.
@Suite("RequestRouter and RoutingLease")
struct RequestRouterTests {
    static let endpoints = (1...3).map { EndpointAddress(host: "10.0.0.\($0)", port: 8000) }

    static func router(policy: EndpointPickerConfig = .kvrouteDefault) throws -> RequestRouter {
        try RequestRouter(
            configuration: .init(pickerConfig: policy, seed: 1, maxAttempts: 3),
            metrics: PickerMetrics(poolName: "test"),
            snapshots: { endpoints.map { EndpointSnapshot(address: $0) } })
    }

    static func request(_ id: String, prompt: String = String(repeating: "A shared system prompt, long enough for many blocks. ", count: 40),
                        session: String? = nil, token: EndpointAddress? = nil) -> InferenceRequest {
        InferenceRequest(
            requestID: id, model: "m", prompt: .messages([ChatMessage(role: "system", content: prompt), ChatMessage(role: "user", content: "hi")]),
            sessionKey: session, headers: token.map { [SessionKey.tokenHeader: SessionAffinityScorer.token(for: $0)] } ?? [:])
    }

    @Test("in flight goes up on route and down on finish, exactly once")
    func inFlightExactlyOnce() throws {
        let router = try Self.router()
        let scheduler = router.scheduler
        let lease = try router.route(Self.request("r1"))
        #expect(scheduler.inFlight(lease.primary) == 1)
        #expect(scheduler.inFlightTotal == 1)
        lease.finished(servedBy: lease.primary, outcome: .answered(status: 200))
        #expect(scheduler.inFlightTotal == 0)
        lease.finished(servedBy: lease.primary, outcome: .answered(status: 200))
        lease.finished(servedBy: nil, outcome: .failed(code: 502))
        #expect(scheduler.inFlightTotal == 0)
        #expect(lease.isFinished)
        let page = String(decoding: router.metrics.render(), as: UTF8.self)
        #expect(page.contains("kvroute_requests_routed_total{endpoint=\"\(lease.primary)\"} 1"))
    }

    @Test("a lease dropped unfinished releases its in-flight count")
    func droppedLease() throws {
        let router = try Self.router()
        let scheduler = router.scheduler
        do {
            let lease = try router.route(Self.request("dropped"))
            #expect(scheduler.inFlight(lease.primary) == 1)
        }
        #expect(scheduler.inFlightTotal == 0)
    }

    @Test("two requests with the same client request id are counted apart")
    func collidingRequestIDs() throws {
        let router = try Self.router()
        let scheduler = router.scheduler
        let a = try router.route(Self.request("same"))
        let b = try router.route(Self.request("same"))
        #expect(scheduler.inFlightTotal == 2)
        a.finished(servedBy: a.primary, outcome: .answered(status: 200))
        #expect(scheduler.inFlightTotal == 1)
        b.finished(servedBy: b.primary, outcome: .answered(status: 200))
        #expect(scheduler.inFlightTotal == 0)
    }

    @Test("a lease served by a fallback moves the in-flight count, the prefix index entry and the session token there")
    func fallbackServes() throws {
        let router = try Self.router()
        let scheduler = router.scheduler
        // The session token pins the primary, so the fallback is known.
        let lease = try router.route(Self.request("first", session: "s1", token: Self.endpoints[0]))
        let primary = lease.primary
        #expect(primary == Self.endpoints[0])
        let fallback = try #require(lease.endpoints.dropFirst().first)
        #expect(lease.sessionToken == SessionAffinityScorer.token(for: primary))
        lease.serving(fallback)
        #expect(scheduler.inFlight(primary) == 0)
        #expect(scheduler.inFlight(fallback) == 1)
        #expect(lease.sessionToken == SessionAffinityScorer.token(for: fallback))
        lease.finished(servedBy: fallback, outcome: .answered(status: 200))
        #expect(scheduler.inFlightTotal == 0)

        // The same prompt now prefers the endpoint that served it, with its whole prefix.
        let next = try router.route(Self.request("second"))
        #expect(next.primary == fallback)
        let explanation = try #require(next.decision.result?.explanation)
        #expect(explanation.matchedPrefixBlocks == explanation.totalPrefixBlocks && explanation.totalPrefixBlocks > 0)
        #expect(explanation.candidates.first { $0.endpoint == primary }.map { $0.scores.first { $0.plugin == "prefix-cache-scorer" }?.raw } == 0)
        next.finished(servedBy: next.primary, outcome: .answered(status: 200))

        // The session remembers the fallback too.
        let again = try router.route(Self.request("third", prompt: "something else entirely", session: "s1"))
        #expect(again.primary == fallback)
        again.finished(servedBy: again.primary, outcome: .answered(status: 200))
    }

    @Test("finishing with a fallback that was never announced moves the bookkeeping the same way")
    func finishedByFallback() throws {
        let router = try Self.router()
        let scheduler = router.scheduler
        let lease = try router.route(Self.request("first", token: Self.endpoints[1]))
        #expect(lease.primary == Self.endpoints[1])
        let fallback = Self.endpoints[2]
        lease.finished(servedBy: fallback, outcome: .answered(status: 200))
        #expect(scheduler.inFlightTotal == 0)
        let next = try router.route(Self.request("second"))
        #expect(next.primary == fallback)
        next.finished(servedBy: nil, outcome: .abandoned)
        let page = String(decoding: router.metrics.render(), as: UTF8.self)
        #expect(page.contains("kvroute_requests_routed_total{endpoint=\"\(fallback)\"} 1"))
    }

    @Test("a session known from headers alone goes by consistent hash and is counted in flight")
    func headersOnlySession() throws {
        let router = try Self.router()
        let scheduler = router.scheduler
        let headersOnly = InferenceRequest(requestID: "h", model: "", prompt: .none, sessionKey: "sticky")
        let lease = try router.route(headersOnly, headersOnly: true)
        #expect(lease.decision.profile == "consistent-hash" && lease.decision.mode == "consistent-hash")
        #expect(scheduler.inFlight(lease.primary) == 1)
        let again = try router.route(headersOnly, headersOnly: true)
        #expect(again.primary == lease.primary)
        #expect(scheduler.inFlight(lease.primary) == 2)
        lease.finished(servedBy: lease.primary, outcome: .unobserved)
        again.finished(servedBy: again.primary, outcome: .unobserved)
        #expect(scheduler.inFlightTotal == 0)
        // With a session token, or a body, the picker decides.
        var token = headersOnly
        token.headers[SessionKey.tokenHeader] = SessionAffinityScorer.token(for: Self.endpoints[2])
        let picked = try router.route(token, headersOnly: true)
        #expect(picked.decision.profile == "default" && picked.decision.mode == "default")
        #expect(picked.primary == Self.endpoints[2])
    }

    /// Keeps the outcomes the ledger hands its states.
    struct Outcomes: LedgerState {
        var seen: [RequestOutcome] = []
        mutating func learn(_ event: LedgerEvent) {
            if case .finished(_, let o) = event { seen.append(o) }
        }
    }

    @Test("what the front door observed — time to first byte, token usage, status — reaches the ledger's states")
    func outcomesReachTheLedger() throws {
        let router = try Self.router()
        let key = LedgerKey<Outcomes>("test/outcomes")
        router.scheduler.withLedger { $0.install(LedgerStateSpec(key) { Outcomes() }) }
        let started = ContinuousClock.now
        let lease = try router.route(Self.request("observed"), started: started)
        lease.firstByte(at: started + .milliseconds(250))
        lease.firstByte(at: started + .seconds(9))
        lease.finished(servedBy: lease.primary, outcome: .answered(status: 200),
                       usage: ResponseUsage(promptTokens: 120, completionTokens: 7, cachedTokens: 64))
        let unobserved = try router.route(Self.request("unobserved"))
        unobserved.finished(servedBy: nil, outcome: .failed(code: 502))
        let seen = try #require(router.scheduler.withLedger { $0[key] }).seen
        #expect(seen.count == 2)
        let o = try #require(seen.first)
        #expect(o.servedBy == lease.primary && o.result == .answered(status: 200))
        #expect(o.timeToFirstByte.map { abs($0 - 0.25) < 1e-9 } == true)
        #expect(o.promptTokens == 120 && o.cachedTokens == 64 && o.completionTokens == 7)
        #expect(seen[1].result == .failed(code: 502) && seen[1].timeToFirstByte == nil && seen[1].promptTokens == nil)
    }

    @Test("errors are KVRouteErrors with their HTTP status, counted by status")
    func refusals() throws {
        let router = try Self.router()
        var r = Self.request("hint")
        r.subsetHint = []
        #expect(throws: KVRouteError.self) { try router.route(r) }
        do { _ = try router.route(r) } catch let e as KVRouteError { #expect(OpenAIErrorBody.status(for: e) == 503) }
        let page = String(decoding: router.metrics.render(), as: UTF8.self)
        #expect(page.contains("error_code=\"503\""))
        // The mesh modes honour the subset hint too.
        let ring = try Self.router(policy: .consistentHash)
        var hinted = Self.request("ring", session: "s")
        hinted.subsetHint = [Self.endpoints[1]]
        let lease = try ring.route(hinted)
        #expect(lease.endpoints == [Self.endpoints[1]])
    }

    @Test("OpenAI error bodies: one shape for every front door")
    func errorBodies() throws {
        let body = String(decoding: OpenAIErrorBody.json(status: 413, message: "too \"big\""), as: UTF8.self)
        #expect(body == #"{"error":{"code":413,"message":"too \"big\"","param":null,"type":"RequestEntityTooLargeError"}}"#)
        #expect(OpenAIErrorBody.status(for: KVRouteError(code: .missingModel, message: "")) == 400)
        #expect(OpenAIErrorBody.status(for: KVRouteError(code: .noCapacity, message: "")) == 429)
        #expect(OpenAIErrorBody.status(for: KVRouteError(code: .internalError, message: "")) == 500)
    }
}
