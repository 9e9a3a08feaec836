import Testing
@testable import KVRouteCore

/// The default profile's session weight against the load and prefix signals it competes
/// with: endpoint 0 is the session's (named by its `x-session-token`), endpoint 1 the other.
@Suite("Session affinity against load and prefix")
struct SessionAffinityWeightTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var testDescription: String
        /// More requests the router has in flight on the session's endpoint.
        var inFlight = 0
        /// Its scraped waiting queue.
        var waiting = 0
        /// Its KV-cache usage.
        var kv = 0.0
        /// The prompt's shared first block is indexed on the other endpoint only.
        var templateElsewhere = false
        /// The conversation's history (3 of the prompt's 4 blocks) is indexed on the session's endpoint.
        var historyThere = false
        var stays: Bool
    }

    static let template = String(repeating: "t", count: 64)
    static let history = template + String(repeating: "h", count: 128)
    static let prompt = history + String(repeating: "q", count: 64)

    @Test("a returned session token keeps the session on its engine until that engine saturates", arguments: [
        Case(testDescription: "one more request in flight there", inFlight: 1, stays: true),
        Case(testDescription: "one more waiting in a stale scrape", waiting: 1, stays: true),
        Case(testDescription: "the shared template block indexed on the other engine only", templateElsewhere: true, stays: true),
        Case(testDescription: "one more in flight and the template block elsewhere", inFlight: 1, templateElsewhere: true, stays: true),
        Case(testDescription: "one more waiting and the template block elsewhere", waiting: 1, templateElsewhere: true, stays: true),
        Case(testDescription: "KV usage 45 % against 0 %", kv: 0.45, stays: true),
        Case(testDescription: "three more in flight", inFlight: 3, stays: true),
        Case(testDescription: "three more in flight, its history indexed there", inFlight: 3, historyThere: true, stays: true),
        Case(testDescription: "saturated: 8 more in flight", inFlight: 8, stays: false),
        Case(testDescription: "saturated: 8 waiting", waiting: 8, stays: false),
        Case(testDescription: "saturated: KV cache 90 % full", kv: 0.9, stays: false),
        Case(testDescription: "saturated with its history indexed there", inFlight: 8, historyThere: true, stays: false),
        Case(testDescription: "saturated, template block elsewhere", inFlight: 8, templateElsewhere: true, stays: false),
    ])
    func sessionToken(_ t: Case) throws {
        let (mine, other) = (ep(0), ep(1))
        let candidates = [snap(0, waiting: t.waiting, kv: t.kv), snap(1)]
        let s = try Scheduler(config: .kvrouteDefault, randomSeed: 1)
        func place(_ id: String, _ prompt: PromptContent, on e: EndpointAddress, finish: Bool) throws {
            let r = try s.schedule(InferenceRequest(requestID: id, model: "m", apiKind: .completions, prompt: prompt, subsetHint: [e]), candidates: candidates)
            #expect(r.primary == e)
            if finish { s.requestFinished(requestID: id, servedBy: e) }
        }
        if t.templateElsewhere { try place("template", .text(Self.template), on: other, finish: true) }
        if t.historyThere { try place("history", .text(Self.history), on: mine, finish: true) }
        for i in 0..<t.inFlight { try place("load\(i)", .none, on: mine, finish: false) }

        let request = InferenceRequest(
            requestID: "turn", model: "m", apiKind: .completions, prompt: .text(Self.prompt),
            headers: ["x-session-token": SessionAffinityScorer.token(for: mine)])
        let r = try s.schedule(request, candidates: candidates)
        #expect(r.primary == (t.stays ? mine : other), "\(r.explanation)")
    }

    @Test("the default profile's session weight is the one derived from its load scorers")
    func derivedWeight() throws {
        let profile = try Scheduler(config: .kvrouteDefault).profile
        let session = try #require(profile.scorers.first { $0.scorer is SessionAffinityScorer })
        #expect(session.weight == SessionAffinityScorer.balancedWeight(in: profile))
        #expect(session.weight == 3.5)
    }

    @Test("the session credit is what the prefix match on the session's endpoint leaves", arguments: [
        (0, 4, 1.0), (3, 4, 0.25), (4, 4, 0.0), (0, 0, 1.0),
    ])
    func credit(_ matched: Int, _ total: Int, _ expected: Double) {
        var c = context(InferenceRequest(requestID: "r", model: "m", prompt: .none, headers: ["x-session-token": SessionAffinityScorer.token(for: ep(0))]))
        c.totalPrefixBlocks = total
        c.matchedPrefixBlocks = [ep(0): matched, ep(1): total]
        #expect(SessionAffinityScorer(name: "s").score([snap(0), snap(1)], context: &c, ledger: RoutingLedger()) == [expected, 0])
    }
}
