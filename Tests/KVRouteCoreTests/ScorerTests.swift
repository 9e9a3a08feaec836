import Testing
@testable import KVRouteCore

func ep(_ i: Int) -> EndpointAddress { EndpointAddress(host: "10.0.0.\(i)", port: 8000) }

func snap(_ i: Int, waiting: Int = 0, running: Int = 0, kv: Double = 0, healthy: Bool = true, age: Double? = 0.01, labels: [String: String] = [:]) -> EndpointSnapshot {
    EndpointSnapshot(address: ep(i), labels: labels, waitingRequests: waiting, runningRequests: running, kvCacheUsage: kv, healthy: healthy, metricsAge: age)
}

func context(_ r: InferenceRequest = InferenceRequest(requestID: "r", model: "m", prompt: .text("x")), inFlight: [EndpointAddress: Int] = [:], session: EndpointAddress? = nil) -> SchedulingContext {
    SchedulingContext(request: r, inFlight: inFlight, sessionEndpoint: session)
}

@Suite("Scorers, filters and pickers")
struct ScorerTests {
    @Test("queue-scorer: min-max normalised, shorter is better, all equal → 1",
          arguments: [([0, 5, 10], [1.0, 0.5, 0.0]), ([3, 3, 3], [1.0, 1.0, 1.0]), ([2, 0], [0.0, 1.0])])
    func queue(_ waiting: [Int], _ expected: [Double]) {
        var c = context()
        #expect(QueueScorer(name: "q").score(waiting.indices.map { snap($0, waiting: waiting[$0]) }, context: &c) == expected)
    }

    @Test("kv-cache-utilization-scorer: 1 − usage", arguments: [(0.0, 1.0), (0.25, 0.75), (1.0, 0.0)])
    func kv(_ usage: Double, _ expected: Double) {
        var c = context()
        #expect(KVCacheUtilizationScorer(name: "k").score([snap(0, kv: usage)], context: &c) == [expected])
    }

    @Test("load-aware-scorer: 0.5 idle, falling to 0 at the threshold", arguments: [(0, 0.5), (64, 0.25), (128, 0.0), (500, 0.0)])
    func loadAware(_ waiting: Int, _ expected: Double) {
        var c = context()
        #expect(LoadAwareScorer(name: "l", threshold: 128).score([snap(0, waiting: waiting)], context: &c) == [expected])
    }

    @Test("active-request-scorer uses the pick-time in-flight counts")
    func active() {
        var c = context(inFlight: [ep(0): 4, ep(1): 2])
        #expect(ActiveRequestScorer(name: "a").score([snap(0), snap(1), snap(2)], context: &c) == [0, 0.5, 1])
        var idle = context()
        #expect(ActiveRequestScorer(name: "a").score([snap(0), snap(1)], context: &idle) == [1, 1])
    }

    @Test("session-affinity-scorer: remembered endpoint, or the x-session-token header")
    func session() {
        var c = context(session: ep(1))
        #expect(SessionAffinityScorer(name: "s").score([snap(0), snap(1)], context: &c) == [0, 1])
        let token = SessionAffinityScorer.token(for: ep(0))
        var t = context(InferenceRequest(requestID: "r", model: "m", prompt: .none, headers: ["x-session-token": token]), session: ep(1))
        #expect(SessionAffinityScorer(name: "s").score([snap(0), snap(1)], context: &t) == [1, 0])
    }

    @Test("prefix-cache-scorer: matched leading blocks / blocks, learned from picks, LRU-bounded")
    func prefix() {
        let scorer = PrefixCacheScorer(name: "p", blockBytes: 4, maxBlocks: 100, lruCapacityPerServer: 6)
        let r1 = InferenceRequest(requestID: "1", model: "m", prompt: .text("aaaabbbbccccdddd"))
        var c1 = context(r1)
        #expect(scorer.score([snap(0), snap(1)], context: &c1) == [0, 0])
        scorer.picked(ep(0), context: c1)
        // Shares the first two of four blocks.
        var c2 = context(InferenceRequest(requestID: "2", model: "m", prompt: .text("aaaabbbbxxxxyyyy")))
        #expect(scorer.score([snap(0), snap(1)], context: &c2) == [0.5, 0])
        // Another model never matches (the chain is seeded with the model name).
        var c3 = context(InferenceRequest(requestID: "3", model: "other", prompt: .text("aaaabbbbccccdddd")))
        #expect(scorer.score([snap(0)], context: &c3) == [0])
        // Six more blocks on endpoint 0 push the first request's blocks out of its LRU.
        var c4 = context(InferenceRequest(requestID: "4", model: "m", prompt: .text("eeeeffffgggghhhhiiiijjjj")))
        _ = scorer.score([snap(0)], context: &c4)
        scorer.picked(ep(0), context: c4)
        var c5 = context(r1)
        #expect(scorer.score([snap(0)], context: &c5) == [0])
        #expect(scorer.indexSize == 6)
    }

    @Test("chats sharing a system prompt share prefix blocks; a different system prompt does not")
    func chatPrefix() {
        let scorer = PrefixCacheScorer(name: "p")
        let system = ChatMessage(role: "system", content: String(repeating: "Be precise and kind. ", count: 40))
        var c1 = context(InferenceRequest(requestID: "1", model: "m", prompt: .messages([system, ChatMessage(role: "user", content: "first")])))
        _ = scorer.score([snap(0)], context: &c1)
        scorer.picked(ep(0), context: c1)
        var c2 = context(InferenceRequest(requestID: "2", model: "m", prompt: .messages([system, ChatMessage(role: "user", content: "second question")])))
        #expect(scorer.score([snap(0)], context: &c2)[0] > 0.9)
        var c3 = context(InferenceRequest(requestID: "3", model: "m", prompt: .messages([ChatMessage(role: "system", content: "Other rules. " + system.content), ChatMessage(role: "user", content: "first")])))
        #expect(scorer.score([snap(0)], context: &c3)[0] == 0)
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
