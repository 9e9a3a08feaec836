import Testing
@testable import KVRouteCore

/// The routing rules that were modes before they were plugins: round-robin, random,
/// consistent hash, and kvroute's mesh rules in the profile handler; and the ledger's events.
@Suite("Routing rules as plugins and built-in configurations")
struct RoutingRuleTests {
    static let endpoints = (0..<4).map { snap($0) }

    @Test("every built-in configuration loads, under its name and its older aliases", arguments: EndpointPickerConfig.builtInNames + ["picker", "kvroute", "llm-d", "session-hash"])
    func builtIns(_ name: String) throws {
        let config = try #require(EndpointPickerConfig.builtIn(name))
        #expect(EndpointPickerConfig.builtInNames.contains(config.name))
        _ = try Scheduler(config: config, randomSeed: 1)
    }

    @Test("round-robin: each request takes the next endpoint; fallbacks follow in turn")
    func roundRobin() throws {
        let s = try Scheduler(config: .roundRobin, randomSeed: 1)
        var primaries: [EndpointAddress] = []
        for i in 0..<8 {
            let r = try s.schedule(chat("rr\(i)", system: longSystem), candidates: Self.endpoints)
            primaries.append(r.primary)
            let i = Self.endpoints.firstIndex { $0.address == r.primary }!
            #expect(r.fallbacks == (1..<4).map { Self.endpoints[(i + $0) % 4].address })
        }
        #expect(primaries == (0..<8).map { ep($0 % 4) })
    }

    @Test("round-robin skips an endpoint that is down, and keeps one whose metrics are stale")
    func roundRobinHealth() throws {
        let s = try Scheduler(config: .roundRobin, randomSeed: 1)
        let seen = try (0..<6).map { try s.schedule(chat("h\($0)", system: "x"), candidates: [snap(0), snap(1, healthy: false), snap(2, age: nil)]).primary }
        #expect(Set(seen) == [ep(0), ep(2)])
    }

    struct HashCase: Sendable, CustomTestStringConvertible {
        var session: String?
        var testDescription: String { session ?? "no session" }
    }

    @Test("consistent hash: a session always lands on its ring point, fallbacks walk the ring; random without a session",
          arguments: ["a", "b", "conversation-42"])
    func consistentHash(_ session: String) throws {
        let s = try Scheduler(config: .consistentHash, randomSeed: 1)
        let ring = ConsistentHashRing(endpoints: Self.endpoints.map(\.address), minimumRingSize: 4096)
        for i in 0..<5 {
            let r = try s.schedule(chat("c\(i)", system: "s\(i)", session: session), candidates: Self.endpoints)
            #expect([r.primary] + r.fallbacks == ring.pick(key: session, count: 4))
        }
    }

    @Test("consistent hash without a session spreads at random")
    func consistentHashNoSession() throws {
        let s = try Scheduler(config: .consistentHash, randomSeed: 1)
        let seen = try Set((0..<40).map { try s.schedule(chat("n\($0)", system: "same"), candidates: Self.endpoints).primary })
        #expect(seen.count > 1)
    }

    @Test("random: every endpoint is chosen sometimes; fallbacks are the others")
    func random() throws {
        let s = try Scheduler(config: .random, randomSeed: 1)
        var seen = Set<EndpointAddress>()
        for i in 0..<60 {
            let r = try s.schedule(chat("r\(i)", system: "same"), candidates: Self.endpoints)
            seen.insert(r.primary)
            #expect(Set([r.primary] + r.fallbacks).count == 4)
        }
        #expect(seen.count == 4)
    }

    struct HandlerCase: Sendable, CustomTestStringConvertible {
        var name: String
        var headersOnly: Bool
        var session: String?
        var token: Bool
        var expected: String?
        var testDescription: String { name }
    }

    @Test("single-profile-handler: a bodiless request with a session and no token goes by the ring", arguments: [
        HandlerCase(name: "headers only, session", headersOnly: true, session: "s", token: false, expected: "consistent-hash"),
        HandlerCase(name: "headers only, session and token", headersOnly: true, session: "s", token: true, expected: nil),
        HandlerCase(name: "headers only, no session", headersOnly: true, session: nil, token: false, expected: nil),
        HandlerCase(name: "body, session", headersOnly: false, session: "s", token: false, expected: nil),
    ])
    func headersOnlyRule(_ c: HandlerCase) {
        let h = SingleProfileHandler(name: "h")
        let r = InferenceRequest(requestID: "r", model: "", prompt: .none, sessionKey: c.session,
                                 headers: c.token ? ["x-session-token": SessionAffinityScorer.token(for: ep(1))] : [:])
        #expect(h.profile(for: r, headersOnly: c.headersOnly) == c.expected)
        #expect(SingleProfileHandler(name: "h", headersOnlyProfile: nil).profile(for: r, headersOnly: c.headersOnly) == nil)
    }

    /// A picker that always fails, to see the handler's fallback take over.
    struct FailingPicker: EndpointPicker {
        let type = "failing-picker"
        let name = "failing-picker"
        struct Failure: Error {}
        func pick(_ scored: [(endpoint: EndpointSnapshot, score: Double)], context: inout SchedulingContext, ledger: RoutingLedger, using rng: inout SeededGenerator) -> [EndpointAddress] { [] }
    }

    @Test("a profile that fails hands the request to the consistent-hash profile, which is counted in flight")
    func fallbackProfile() throws {
        // A picker that chooses nothing is "no candidates": that error stands.
        let s = try Scheduler(config: .kvrouteDefault, randomSeed: 1)
        #expect(s.plugins.handler.fallback(after: FailingPicker.Failure(), in: "default") == "consistent-hash")
        #expect(s.plugins.handler.fallback(after: FailingPicker.Failure(), in: "consistent-hash") == nil)
        #expect(EndpointPickerConfig.roundRobin.instantiateHandler.fallback(after: FailingPicker.Failure(), in: "default") == nil)
        let r = try s.schedule(InferenceRequest(requestID: "h", model: "", prompt: .none, sessionKey: "k"), candidates: Self.endpoints, headersOnly: true)
        #expect(r.profile == "consistent-hash")
        #expect(r.primary == ConsistentHashRing(endpoints: Self.endpoints.map(\.address)).pick(key: "k"))
        #expect(s.inFlight(r.primary) == 1)
    }

    @Test("a handler naming a profile the configuration lacks is refused")
    func undefinedProfile() {
        let yaml = """
        kind: EndpointPickerConfig
        plugins:
        - type: single-profile-handler
          parameters:
            fallbackProfile: nowhere
        - type: queue-scorer
        - type: max-score-picker
        """
        #expect { try EndpointPickerConfig.load(yaml: yaml) } throws: { ($0 as? KVRouteError)?.message.contains("nowhere") == true }
    }

    /// Records every event, to check what reaches plugin states.
    struct Recorder: LedgerState {
        var events: [String] = []
        var outcomes: [RequestOutcome] = []
        mutating func learn(_ event: LedgerEvent) {
            switch event {
            case .admitted(let r): events.append("admitted \(r.requestID) \(r.endpoint)")
            case .moved(let r, let from): events.append("moved \(r.requestID) \(from)→\(r.endpoint)")
            case .finished(let r, let o):
                events.append("finished \(r.requestID) \(r.endpoint)")
                outcomes.append(o)
            case .endpointLeft(let e): events.append("left \(e)")
            }
        }
    }

    @Test("the ledger: admission, a move, a finish with what was observed, a departure — in order, to every state")
    func ledgerEvents() throws {
        let key = LedgerKey<Recorder>("test/recorder")
        var l = RoutingLedger()
        l.install(LedgerStateSpec(key) { Recorder() })
        let c = SchedulingContext(request: InferenceRequest(requestID: "1", model: "m", prompt: .none, sessionKey: "s"), now: 5)
        l.admit(RequestRecord(requestID: "1", endpoint: ep(0), session: "s", admittedAt: 5, profile: "default", context: c))
        #expect(l.inFlight(ep(0)) == 1 && l.sessionEndpoint("s") == ep(0))
        let outcome = RequestOutcome(servedBy: ep(1), result: .answered(status: 200), finishedAt: 7, timeToFirstByte: 0.25,
                                     promptTokens: 100, cachedTokens: 64, completionTokens: 8)
        l.finish(requestID: "1", outcome: outcome)
        l.finish(requestID: "1", outcome: outcome)
        l.endpointLeft(ep(1))
        let r = try #require(l[key])
        #expect(r.events == ["admitted 1 \(ep(0))", "moved 1 \(ep(0))→\(ep(1))", "finished 1 \(ep(1))", "left \(ep(1))"])
        #expect(r.outcomes == [outcome])
        #expect(l.inFlightTotal == 0 && l.sessionEndpoint("s") == ep(1))
    }
}

extension EndpointPickerConfig {
    var instantiateHandler: any ProfileHandler { try! instantiate().handler }
}
