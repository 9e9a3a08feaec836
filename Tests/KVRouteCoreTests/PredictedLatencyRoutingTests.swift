import Testing
@testable import KVRouteCore

@Suite("Predicted latency: routing")
struct PredictedLatencyRoutingTests {
    static let fast = EndpointAddress(host: "10.0.1.1", port: 8000)
    static let slow = EndpointAddress(host: "10.0.1.2", port: 8000)
    static let stateKey = LedgerKey<PredictedLatencyState>("predicted-latency-scorer/predicted-latency-scorer")

    /// A closed loop through the Scheduler and the predicted-latency profile: two engines,
    /// one twice as slow in every coefficient (neither is configured as such), unique
    /// 1000-token prompts arriving every 35 ms (~75 % of the pair's capacity). Each engine
    /// prefills first-come first-served; answers come back with usage and timings. The
    /// scorer must learn the slow engine's speed and send it less than its half of the load.
    @Test func learnsASlowEngineAndMovesLoadAway() throws {
        let scheduler = try Scheduler(config: EndpointPickerConfig.load(yaml: EndpointPickerConfig.predictedLatencyYAML), randomSeed: 1)
        let prior = LatencyCoefficients.prior
        let truth: [EndpointAddress: (speed: Double, busyUntil: Double)] = [Self.fast: (1, 0), Self.slow: (2, 0)]
        var busyUntil = truth.mapValues(\.busyUntil)
        var finishes: [(at: Double, id: String, outcome: RequestOutcome)] = []
        var routed: [EndpointAddress] = []
        var rng = SeededGenerator(seed: 42)
        let letters = Array("abcdefghijklmnopqrstuvwxyz ".utf8)
        let promptTokens = 1000, outputTokens = 20
        for i in 0..<1200 {
            let now = Double(i) * 0.035
            finishes.sort { $0.at < $1.at }
            while let f = finishes.first, f.at <= now {
                finishes.removeFirst()
                scheduler.requestFinished(requestID: f.id, outcome: f.outcome)
            }
            let text = String(decoding: (0..<(promptTokens * 4)).map { _ in letters[Int.random(in: 0..<letters.count, using: &rng)] }, as: UTF8.self)
            let request = InferenceRequest(requestID: "r\(i)", model: "m", prompt: .text(text))
            let result = try scheduler.schedule(request, candidates: [EndpointSnapshot(address: Self.fast), EndpointSnapshot(address: Self.slow)], now: now)
            let e = result.primary
            routed.append(e)
            let speed = truth[e]!.speed
            let start = max(now, busyUntil[e]!)
            busyUntil[e] = start + speed * prior.prefillPerToken * Double(promptTokens)
            let ttft = busyUntil[e]! - now + speed * prior.ttftBase
            let batch = Double(scheduler.inFlight(e))
            let tpot = speed * (prior.tpotBase + prior.tpotPerSequence * batch)
            let total = ttft + Double(outputTokens - 1) * tpot
            finishes.append((now + total, request.requestID, RequestOutcome(
                servedBy: e, result: .answered(status: 200), finishedAt: now + total, timeToFirstByte: ttft,
                promptTokens: promptTokens, cachedTokens: 0, completionTokens: outputTokens)))
        }
        let late = routed.suffix(600)
        let slowShare = Double(late.filter { $0 == Self.slow }.count) / Double(late.count)
        let (a, b) = try #require(scheduler.withLedger { l in l[Self.stateKey].map { ($0.book.coefficients(Self.fast), $0.book.coefficients(Self.slow)) } })
        // Load moved away from the slow engine, without starving it…
        #expect(slowShare > 0.05 && slowShare < 0.4, "slow endpoint got \(slowShare) of the late traffic")
        // …because its speed was learned: an idle engine's TTFT for this prompt within 15 %
        // of the truth (50 ms and 100 ms), TPOT at batch 1 within 10 %.
        let idle = LatencyFeatures(prefillTokensAhead: Double(promptTokens), decodingSequences: 0, batchSequences: 1)
        #expect(abs(a.ttft(idle) / prior.ttft(idle) - 1) < 0.15, "fast \(a)")
        #expect(abs(b.ttft(idle) / (2 * prior.ttft(idle)) - 1) < 0.15, "slow \(b)")
        #expect(abs(a.tpot(idle) / prior.tpot(idle) - 1) < 0.1)
        #expect(abs(b.tpot(idle) / (2 * prior.tpot(idle)) - 1) < 0.1)
    }

    /// The prefix the ledger says an endpoint holds makes it cheaper by exactly the prefill
    /// of the held part; an idle endpoint's price is the prior's.
    @Test func scorerPricesThePrefixAnEndpointHolds() throws {
        let scorer = PredictedLatencyScorer(name: "pl")
        var ledger = RoutingLedger()
        for spec in scorer.ledgerStates { ledger.install(spec) }
        let prompt = String(repeating: "0123456789abcdef", count: 256)  // 64 blocks of 64 characters = 1024 tokens at 4/token
        let candidates = [EndpointSnapshot(address: Self.fast), EndpointSnapshot(address: Self.slow)]
        // Teach the index that `fast` holds the prompt, then finish that request.
        var first = SchedulingContext(request: InferenceRequest(requestID: "a", model: "m", prompt: .text(prompt)), now: 0)
        _ = scorer.score(candidates, context: &first, ledger: ledger)
        ledger.admit(RequestRecord(requestID: "a", endpoint: Self.fast, session: nil, admittedAt: 0, profile: "default", context: first.retained))
        ledger.finish(requestID: "a", outcome: RequestOutcome(servedBy: Self.fast, result: .unobserved, finishedAt: 1))

        var second = SchedulingContext(request: InferenceRequest(requestID: "b", model: "m", prompt: .text(prompt + "tail")), now: 2)
        let scores = scorer.score(candidates, context: &second, ledger: ledger)
        let note = try #require(second[note: PredictedLatencyScorer.note])
        let held = try #require(note.candidates[Self.fast]), cold = try #require(note.candidates[Self.slow])
        #expect(abs(held.ownUncachedTokens - 1) < 1e-9)  // only "tail" (4 characters) is new
        #expect(abs(cold.ownUncachedTokens - 1025) < 1e-9)
        let p = LatencyCoefficients.prior
        #expect(abs(cold.prediction.ttft - (1025 * p.prefillPerToken + p.ttftBase)) < 1e-9)
        #expect(abs((cold.prediction.ttft - held.prediction.ttft) - 1024 * p.prefillPerToken) < 1e-9)
        #expect(scores[0] == 1 && scores[1] < 1)
    }

    /// Requests routed and not yet at their predicted first token count as queued prefill.
    @Test func routedRequestsQueueAhead() throws {
        let scorer = PredictedLatencyScorer(name: "pl")
        var ledger = RoutingLedger()
        for spec in scorer.ledgerStates { ledger.install(spec) }
        let candidates = [EndpointSnapshot(address: Self.fast)]
        var c = SchedulingContext(request: InferenceRequest(requestID: "a", model: "m", prompt: .text(String(repeating: "x", count: 8000))), now: 0)
        _ = scorer.score(candidates, context: &c, ledger: ledger)
        ledger.admit(RequestRecord(requestID: "a", endpoint: Self.fast, session: nil, admittedAt: 0, profile: "default", context: c.retained))
        let state = try #require(ledger[scorer.key])
        // 2000 tokens → predicted TTFT 90 ms: queued at 10 ms, decoding at 100 ms.
        #expect(abs(state.load(candidates[0], now: 0.01).routedPrefillTokens - 2000) < 1e-6)
        // 5 ms before its first token, at most 5 ms / 40 µs = 125 tokens are left.
        #expect(abs(state.load(candidates[0], now: 0.085).routedPrefillTokens - 125) < 1e-6)
        #expect(state.load(candidates[0], now: 0.1).routedDecoding == 1)
        ledger.finish(requestID: "a", outcome: RequestOutcome(servedBy: Self.fast, result: .failed(code: 502), finishedAt: 0.2))
        #expect(ledger[scorer.key]?.pendingCount(Self.fast) == 0)
        #expect(ledger[scorer.key]?.book.estimator(Self.fast) == nil)  // a failure teaches nothing
    }

    struct WholeAnswerCase: Sendable {
        var ttfb: Double?
        var total: Double
        var completion: Int?
        var streamed: Bool
    }

    /// An answer whose bytes all came at once was not streamed: its first byte is no TTFT.
    @Test(arguments: [
        WholeAnswerCase(ttfb: 0.5, total: 0.5005, completion: 100, streamed: false),
        WholeAnswerCase(ttfb: 0.1, total: 0.6, completion: 100, streamed: true),
        WholeAnswerCase(ttfb: 0.1, total: 0.1, completion: 1, streamed: true),
        WholeAnswerCase(ttfb: nil, total: 0.6, completion: 100, streamed: false),
    ])
    func recognisesWholeAnswers(_ c: WholeAnswerCase) {
        let o = PredictedLatencyState.outcome(
            RequestOutcome(servedBy: nil, result: .answered(status: 200), finishedAt: c.total, timeToFirstByte: c.ttfb, completionTokens: c.completion),
            total: c.total)
        #expect((o.firstByteSeconds != nil) == c.streamed)
    }
}
