import Testing
@testable import KVRouteCore

@Suite("Predicted latency: model")
struct PredictedLatencyModelTests {
    struct PredictionCase: Sendable, CustomTestStringConvertible {
        var label: String
        var load: EndpointLoad
        var own: Double
        var features: LatencyFeatures
        var ttft: Double
        var tpot: Double
        var testDescription: String { label }
    }

    /// With the prior (a = 40 µs/token, b = 40 µs/sequence, c = 10 ms, d = 5 ms, e = 40 µs)
    /// and 512 tokens per scraped waiting request; the figures are worked out by hand.
    static let predictionCases: [PredictionCase] = [
        // Idle: 1000 × 40 µs + 10 ms = 50 ms; TPOT 5 ms + 1 × 40 µs.
        .init(label: "idle endpoint", load: EndpointLoad(), own: 1000,
              features: .init(prefillTokensAhead: 1000, decodingSequences: 0, batchSequences: 1), ttft: 0.050, tpot: 0.00504),
        // The ledger's 3000 queued tokens beat 2 × 512 scraped; D = max(10, 4); B = max(12, 7) + 1.
        // TTFT = 3500 × 40 µs + 10 × 40 µs + 10 ms = 150.4 ms; TPOT = 5 ms + 13 × 40 µs.
        .init(label: "ledger ahead of the scrape",
              load: EndpointLoad(routedPrefillTokens: 3000, routedWaiting: 3, routedDecoding: 4, waitingRequests: 2, runningRequests: 10),
              own: 500, features: .init(prefillTokensAhead: 3500, decodingSequences: 10, batchSequences: 13), ttft: 0.1504, tpot: 0.00552),
        // Traffic the router did not send: 10 waiting × 512 = 5120 tokens; the batch is capped at 8.
        // TTFT = 5120 × 40 µs + 3 × 40 µs + 10 ms = 214.92 ms; TPOT = 5 ms + 8 × 40 µs.
        .init(label: "scrape ahead of the ledger, batch capped",
              load: EndpointLoad(routedPrefillTokens: 1000, routedWaiting: 1, waitingRequests: 10, runningRequests: 3, maxNumSeqs: 8),
              own: 0, features: .init(prefillTokensAhead: 5120, decodingSequences: 3, batchSequences: 8), ttft: 0.21492, tpot: 0.00532),
    ]

    @Test(arguments: predictionCases)
    func predictsHandComputedCases(_ c: PredictionCase) {
        let f = c.load.features(ownUncachedTokens: c.own, meanUncachedTokens: 512)
        #expect(f == c.features)
        let book = LatencyModelBook()
        let p = book.predict(EndpointAddress(host: "10.0.0.1", port: 8000), features: f)
        #expect(abs(p.ttft - c.ttft) < 1e-9)
        #expect(abs(p.tpot - c.tpot) < 1e-9)
        #expect(abs(p.endToEnd(outputTokens: 11) - (c.ttft + 10 * c.tpot)) < 1e-9)
    }

    /// Observations from an engine whose true coefficients are `truth`, with ±`noise`
    /// relative jitter, over varied load.
    static func observations(_ truth: LatencyCoefficients, count: Int, noise: Double, streamed: Bool, seed: UInt64) -> [LatencyObservation] {
        var rng = SeededGenerator(seed: seed)
        return (0..<count).map { _ in
            let f = LatencyFeatures(
                prefillTokensAhead: Double.random(in: 50...8000, using: &rng),
                decodingSequences: Double(Int.random(in: 0...64, using: &rng)),
                batchSequences: Double(Int.random(in: 1...128, using: &rng)))
            let n = Int.random(in: 1...400, using: &rng)
            let ttft = truth.ttft(f) * (1 + Double.random(in: -noise...noise, using: &rng))
            let decode = Double(n - 1) * truth.tpot(f) * (1 + Double.random(in: -noise...noise, using: &rng))
            return LatencyObservation(features: f, outputTokens: n, firstTokenSeconds: streamed ? ttft : nil, totalSeconds: ttft + decode)
        }
    }

    struct LearningCase: Sendable, CustomTestStringConvertible {
        var label: String
        var factors: [Double]  // truth = prior × factors, [a, b, c, d, e]
        var streamed: Bool
        var count: Int
        var testDescription: String { label }
    }

    static let learningCases: [LearningCase] = [
        .init(label: "2× slower engine, streamed", factors: [2, 2, 2, 2, 2], streamed: true, count: 600),
        .init(label: "2× slower engine, answered whole", factors: [2, 2, 2, 2, 2], streamed: false, count: 1500),
        .init(label: "heterogeneous engine (slow prefill, fast decode)", factors: [3, 1, 0.5, 0.6, 1.5], streamed: true, count: 800),
    ]

    /// The estimator finds an engine's coefficients from the prior without configuration.
    @Test(arguments: learningCases)
    func learnsCoefficientsOnline(_ c: LearningCase) {
        let p = LatencyCoefficients.prior
        let truth = LatencyCoefficients(
            prefillPerToken: p.prefillPerToken * c.factors[0], ttftPerDecodingSequence: p.ttftPerDecodingSequence * c.factors[1],
            ttftBase: p.ttftBase * c.factors[2], tpotBase: p.tpotBase * c.factors[3], tpotPerSequence: p.tpotPerSequence * c.factors[4])
        var estimator = OnlineLatencyEstimator()
        for o in Self.observations(truth, count: c.count, noise: 0.05, streamed: c.streamed, seed: 7) { estimator.learn(o) }
        let learned = estimator.coefficients
        // The coefficients that carry most of the time are pinned within 15 %…
        #expect(abs(learned.prefillPerToken / truth.prefillPerToken - 1) < 0.15)
        #expect(abs(learned.tpotBase / truth.tpotBase - 1) < 0.15)
        #expect(abs(learned.tpotPerSequence / truth.tpotPerSequence - 1) < 0.15)
        // …and predictions on fresh load are within 10 % on average.
        var error = 0.0
        let held = Self.observations(truth, count: 200, noise: 0, streamed: true, seed: 99)
        for o in held {
            error += abs(learned.ttft(o.features) / truth.ttft(o.features) - 1) + abs(learned.tpot(o.features) / truth.tpot(o.features) - 1)
        }
        #expect(error / Double(2 * held.count) < 0.10)
    }

    /// A few wild answers (a stalled connection, a preempted request) barely move the model.
    @Test func outliersAreClipped() {
        let truth = LatencyCoefficients.prior
        var clean = OnlineLatencyEstimator(), dirty = OnlineLatencyEstimator()
        var rng = SeededGenerator(seed: 3)
        for var o in Self.observations(truth, count: 600, noise: 0.05, streamed: true, seed: 11) {
            clean.learn(o)
            if Int.random(in: 0..<20, using: &rng) == 0 {
                o.firstTokenSeconds = (o.firstTokenSeconds ?? 0) * 20
                o.totalSeconds *= 20
            }
            dirty.learn(o)
        }
        #expect(abs(dirty.coefficients.prefillPerToken / clean.coefficients.prefillPerToken - 1) < 0.2)
        #expect(abs(dirty.coefficients.tpotBase / clean.coefficients.tpotBase - 1) < 0.2)
    }

    /// An engine that slows down mid-way is followed (forgetting), not averaged forever.
    @Test func followsAnEngineThatSlowsDown() {
        let p = LatencyCoefficients.prior
        var estimator = OnlineLatencyEstimator(memory: 200)
        for o in Self.observations(p, count: 600, noise: 0.05, streamed: true, seed: 5) { estimator.learn(o) }
        let slow = LatencyCoefficients(
            prefillPerToken: p.prefillPerToken * 2, ttftPerDecodingSequence: p.ttftPerDecodingSequence * 2,
            ttftBase: p.ttftBase * 2, tpotBase: p.tpotBase * 2, tpotPerSequence: p.tpotPerSequence * 2)
        for o in Self.observations(slow, count: 600, noise: 0.05, streamed: true, seed: 6) { estimator.learn(o) }
        #expect(abs(estimator.coefficients.prefillPerToken / slow.prefillPerToken - 1) < 0.15)
        #expect(abs(estimator.coefficients.tpotBase / slow.tpotBase - 1) < 0.15)
    }

    /// Usage teaches characters per token and the mean output length.
    @Test func bookLearnsTokenRatiosFromUsage() {
        var book = LatencyModelBook()
        let e = EndpointAddress(host: "10.0.0.1", port: 8000)
        let record = LatencyRecord(
            queued: .init(prefillTokensAhead: 0, decodingSequences: 0, batchSequences: 1), ownUncachedTokens: 100,
            promptCharacters: 3000, predicted: .init(ttft: 0.05, tpot: 0.005, relativeDeviation: 0.2))
        for _ in 0..<200 {
            book.learn(e, record: record, outcome: LatencyOutcome(promptTokens: 1000, cachedTokens: 200, completionTokens: 50, firstByteSeconds: 0.05, totalSeconds: 0.3))
        }
        #expect(abs(book.charactersPerToken - 3) < 0.01)
        #expect(abs(book.meanOutputTokens - 50) < 0.5)
        #expect(abs(book.meanUncachedTokens - 800) < 5)
        #expect(book.estimator(e)?.observations == 200)
    }
}
