import Testing
@testable import KVRouteCore

func ep(_ i: Int) -> EndpointAddress { EndpointAddress(host: "10.0.0.\(i)", port: 8000) }

func snap(_ i: Int, waiting: Int = 0, running: Int = 0, kv: Double = 0, healthy: Bool = true, age: Double? = 0.01, labels: [String: String] = [:]) -> EndpointSnapshot {
    EndpointSnapshot(address: ep(i), labels: labels, waitingRequests: waiting, runningRequests: running, kvCacheUsage: kv, healthy: healthy, metricsAge: age)
}

func context(_ r: InferenceRequest = InferenceRequest(requestID: "r", model: "m", prompt: .text("x"))) -> SchedulingContext {
    SchedulingContext(request: r)
}

/// Scores with an empty ledger (or `ledger`).
func score(_ scorer: some EndpointScorer, _ candidates: [EndpointSnapshot], _ c: inout SchedulingContext, ledger: RoutingLedger = RoutingLedger()) -> [Double] {
    scorer.score(candidates, context: &c, ledger: ledger)
}

/// A ledger with the scorer's states installed.
func ledger(for scorer: some EndpointScorer) -> RoutingLedger {
    var l = RoutingLedger()
    for spec in scorer.ledgerStates { l.install(spec) }
    return l
}

/// Admits the request `c` scored to `endpoint`, as the Scheduler does after a pick.
func admit(_ c: SchedulingContext, to endpoint: EndpointAddress, in ledger: inout RoutingLedger) {
    ledger.admit(RequestRecord(requestID: c.request.requestID, endpoint: endpoint, session: c.request.sessionKey, admittedAt: c.now, profile: "default", context: c.retained))
}

@Suite("Scorers, filters and pickers")
struct ScorerTests {
    @Test("queue-scorer: min-max normalised, shorter is better, all equal → 1",
          arguments: [([0, 5, 10], [1.0, 0.5, 0.0]), ([3, 3, 3], [1.0, 1.0, 1.0]), ([2, 0], [0.0, 1.0])])
    func queue(_ waiting: [Int], _ expected: [Double]) {
        var c = context()
        #expect(QueueScorer(name: "q").score(waiting.indices.map { snap($0, waiting: waiting[$0]) }, context: &c, ledger: RoutingLedger()) == expected)
    }

    @Test("kv-cache-utilization-scorer: 1 − usage", arguments: [(0.0, 1.0), (0.25, 0.75), (1.0, 0.0)])
    func kv(_ usage: Double, _ expected: Double) {
        var c = context()
        #expect(KVCacheUtilizationScorer(name: "k").score([snap(0, kv: usage)], context: &c, ledger: RoutingLedger()) == [expected])
    }

    @Test("load-aware-scorer: 0.5 idle, falling to 0 at the threshold", arguments: [(0, 0.5), (64, 0.25), (128, 0.0), (500, 0.0)])
    func loadAware(_ waiting: Int, _ expected: Double) {
        var c = context()
        #expect(LoadAwareScorer(name: "l", threshold: 128).score([snap(0, waiting: waiting)], context: &c, ledger: RoutingLedger()) == [expected])
    }

    @Test("active-request-scorer: 1 − in flight / most in flight, from the ledger's pick-time counts", arguments: [
        ([4, 2, 0], [0.0, 0.5, 1.0]), ([0, 0], [1.0, 1.0]), ([3, 3], [0.0, 0.0]), ([1, 0, 0, 0], [0.0, 1.0, 1.0, 1.0]),
    ])
    func active(_ inFlight: [Int], _ expected: [Double]) {
        var c = context()
        let l = RoutingLedger(inFlight: Dictionary(uniqueKeysWithValues: inFlight.indices.map { (ep($0), inFlight[$0]) }))
        #expect(score(ActiveRequestScorer(name: "a"), inFlight.indices.map { snap($0) }, &c, ledger: l) == expected)
    }

    @Test("saturation-scorer: (in flight + waiting) / threshold, or KV usage past kvThreshold", arguments: [
        (0, 0, 0.0, 1.0), (2, 2, 0.0, 0.5), (8, 0, 0.0, 0.0), (0, 12, 0.0, 0.0), (0, 0, 0.7, 0.5), (0, 0, 0.95, 0.0), (2, 0, 0.6, 0.75),
    ])
    func saturation(_ inFlight: Int, _ waiting: Int, _ kv: Double, _ expected: Double) {
        var c = context()
        let scores = score(SaturationScorer(name: "s", threshold: 8, kvThreshold: 0.5), [snap(0, waiting: waiting, kv: kv)], &c,
                           ledger: RoutingLedger(inFlight: [ep(0): inFlight]))
        #expect(abs(scores[0] - expected) < 1e-9, "\(scores)")
    }

    struct SessionCase: Sendable, CustomTestStringConvertible {
        var name: String
        var remembered: EndpointAddress?
        var token: EndpointAddress?
        var expected: [Double]
        var testDescription: String { name }
    }

    @Test("session-affinity-scorer: the ledger's remembered endpoint, or the x-session-token header", arguments: [
        SessionCase(name: "remembered", remembered: ep(1), token: nil, expected: [0, 1]),
        SessionCase(name: "token wins", remembered: ep(1), token: ep(0), expected: [1, 0]),
        SessionCase(name: "token only", remembered: nil, token: ep(1), expected: [0, 1]),
        SessionCase(name: "unknown session", remembered: nil, token: nil, expected: [0, 0]),
    ])
    func session(_ t: SessionCase) {
        var c = context(InferenceRequest(requestID: "r", model: "m", prompt: .none, sessionKey: "s",
                                         headers: t.token.map { ["x-session-token": SessionAffinityScorer.token(for: $0)] } ?? [:]))
        let l = RoutingLedger(inFlight: [:], sessions: t.remembered.map { ["s": $0] } ?? [:])
        #expect(score(SessionAffinityScorer(name: "s"), [snap(0), snap(1)], &c, ledger: l) == t.expected)
    }

    @Test("prefix-cache-scorer: matched leading blocks / blocks, learned from admissions, LRU-bounded")
    func prefix() throws {
        let scorer = PrefixCacheScorer(name: "p", blockBytes: 4, maxBlocks: 100, lruCapacityPerServer: 6)
        var l = ledger(for: scorer)
        let r1 = InferenceRequest(requestID: "1", model: "m", prompt: .text("aaaabbbbccccdddd"))
        var c1 = context(r1)
        #expect(score(scorer, [snap(0), snap(1)], &c1, ledger: l) == [0, 0])
        admit(c1, to: ep(0), in: &l)
        // Shares the first two of four blocks.
        var c2 = context(InferenceRequest(requestID: "2", model: "m", prompt: .text("aaaabbbbxxxxyyyy")))
        #expect(score(scorer, [snap(0), snap(1)], &c2, ledger: l) == [0.5, 0])
        // Another model never matches (the chain is seeded with the model name).
        var c3 = context(InferenceRequest(requestID: "3", model: "other", prompt: .text("aaaabbbbccccdddd")))
        #expect(score(scorer, [snap(0)], &c3, ledger: l) == [0])
        // Six more blocks on endpoint 0 push the first request's blocks out of its LRU.
        var c4 = context(InferenceRequest(requestID: "4", model: "m", prompt: .text("eeeeffffgggghhhhiiiijjjj")))
        _ = score(scorer, [snap(0)], &c4, ledger: l)
        admit(c4, to: ep(0), in: &l)
        var c5 = context(r1)
        #expect(score(scorer, [snap(0)], &c5, ledger: l) == [0])
        #expect(try #require(l[scorer.key]).size == 6)
    }

    @Test("prefix-cache-scorer: a move gives the prompt to the endpoint that served and takes the blocks the admission added")
    func prefixMove() throws {
        let scorer = PrefixCacheScorer(name: "p", blockBytes: 4, maxBlocks: 100)
        var l = ledger(for: scorer)
        var c1 = context(InferenceRequest(requestID: "1", model: "m", prompt: .text("aaaabbbb")))
        _ = score(scorer, [snap(0), snap(1)], &c1, ledger: l)
        admit(c1, to: ep(0), in: &l)
        l.finish(requestID: "1", outcome: RequestOutcome(servedBy: ep(0)))
        // Shares "aaaa" with endpoint 0; moved to endpoint 1, endpoint 0 keeps only what it held.
        var c2 = context(InferenceRequest(requestID: "2", model: "m", prompt: .text("aaaacccc")))
        #expect(score(scorer, [snap(0), snap(1)], &c2, ledger: l) == [0.5, 0])
        admit(c2, to: ep(0), in: &l)
        l.move(requestID: "2", to: ep(1))
        var c3 = context(InferenceRequest(requestID: "3", model: "m", prompt: .text("aaaacccc")))
        #expect(score(scorer, [snap(0), snap(1)], &c3, ledger: l) == [0.5, 1])
        l.endpointLeft(ep(1))
        var c4 = context(InferenceRequest(requestID: "4", model: "m", prompt: .text("aaaacccc")))
        #expect(score(scorer, [snap(0), snap(1)], &c4, ledger: l) == [0.5, 0])
    }

    @Test("chats sharing a system prompt share prefix blocks; a different system prompt does not")
    func chatPrefix() {
        let scorer = PrefixCacheScorer(name: "p")
        var l = ledger(for: scorer)
        let system = ChatMessage(role: "system", content: String(repeating: "Be precise and kind. ", count: 40))
        var c1 = context(InferenceRequest(requestID: "1", model: "m", prompt: .messages([system, ChatMessage(role: "user", content: "first")])))
        _ = score(scorer, [snap(0)], &c1, ledger: l)
        admit(c1, to: ep(0), in: &l)
        var c2 = context(InferenceRequest(requestID: "2", model: "m", prompt: .messages([system, ChatMessage(role: "user", content: "second question")])))
        #expect(score(scorer, [snap(0)], &c2, ledger: l)[0] > 0.9)
        var c3 = context(InferenceRequest(requestID: "3", model: "m", prompt: .messages([ChatMessage(role: "system", content: "Other rules. " + system.content), ChatMessage(role: "user", content: "first")])))
        #expect(score(scorer, [snap(0)], &c3, ledger: l)[0] == 0)
    }

    @Test("decode-filter keeps decode, both and unlabelled endpoints")
    func decodeFilter() throws {
        let f = try #require({ if case .filter(let f) = try PluginRegistry.make(type: "decode-filter", name: "d", parameters: [:]) { f } else { nil } }())
        var c = context()
        let kept = f.filter([snap(0, labels: ["llm-d.ai/role": "decode"]), snap(1, labels: ["llm-d.ai/role": "prefill"]),
                             snap(2, labels: ["llm-d.ai/role": "both"]), snap(3)], context: &c).kept
        #expect(kept.map(\.address) == [ep(0), ep(2), ep(3)])
    }

    @Test("the health filter drops unhealthy and stale endpoints, but never all of them")
    func healthFilter() {
        var c = context()
        let f = HealthFilter(maxMetricsAge: 0.2)
        #expect(f.filter([snap(0), snap(1, healthy: false), snap(2, age: 5)], context: &c).kept.map(\.address) == [ep(0)])
        #expect(f.filter([snap(1, healthy: false), snap(2, healthy: false)], context: &c).kept.count == 2)
        #expect(f.filter([snap(1, age: 9), snap(2, healthy: false)], context: &c).kept.map(\.address) == [ep(1)])
    }

    @Test("max-score-picker: highest wins, ties are broken by the seeded generator, maxNumOfEndpoints")
    func maxScore() {
        var rng = SeededGenerator(seed: 7)
        let p = MaxScorePicker(name: "m", maxNumOfEndpoints: 2)
        #expect(p.pick([(snap(0), 0.1), (snap(1), 0.9), (snap(2), 0.5)], using: &rng) == [ep(1), ep(2)])
        var seen = Set<EndpointAddress>()
        for _ in 0..<50 { seen.formUnion(MaxScorePicker(name: "m").pick([(snap(0), 1), (snap(1), 1)], using: &rng)) }
        #expect(seen.count == 2)
        var a = SeededGenerator(seed: 3), b = SeededGenerator(seed: 3)
        #expect(MaxScorePicker(name: "m").pick([(snap(0), 1), (snap(1), 1), (snap(2), 1)], using: &a) ==
                MaxScorePicker(name: "m").pick([(snap(0), 1), (snap(1), 1), (snap(2), 1)], using: &b))
    }

    @Test("weighted-random-picker follows the scores")
    func weightedRandom() {
        var rng = SeededGenerator(seed: 1)
        var counts: [EndpointAddress: Int] = [:]
        for _ in 0..<2000 {
            counts[WeightedRandomPicker(name: "w").pick([(snap(0), 3), (snap(1), 1), (snap(2), 0)], using: &rng)[0], default: 0] += 1
        }
        #expect(counts[ep(2)] == nil)
        #expect((counts[ep(0)] ?? 0) > 2 * (counts[ep(1)] ?? 0))
    }
}
