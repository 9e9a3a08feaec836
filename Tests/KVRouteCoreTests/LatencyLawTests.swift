import Testing
@testable import KVRouteCore

/// The latency law is written once: predictions and the estimator's rows read the same
/// clamped terms.
@Suite("Predicted latency: the law's terms")
struct LatencyLawTests {
    static let law = LatencyCoefficients(prefillPerToken: 2e-5, ttftPerDecodingSequence: 3e-5, ttftBase: 0.01, tpotBase: 0.004, tpotPerSequence: 5e-5)

    @Test("features out of range read as their clamp: no negative counts, a batch of at least one", arguments: [
        (LatencyFeatures(prefillTokensAhead: -50, decodingSequences: -2, batchSequences: 0), LatencyFeatures(prefillTokensAhead: 0, decodingSequences: 0, batchSequences: 1)),
        (LatencyFeatures(prefillTokensAhead: 1000, decodingSequences: 4, batchSequences: 8), LatencyFeatures(prefillTokensAhead: 1000, decodingSequences: 4, batchSequences: 8)),
    ])
    func clamped(_ raw: LatencyFeatures, _ expected: LatencyFeatures) {
        #expect(raw.clamped == expected)
        #expect(Self.law.ttft(raw) == Self.law.ttft(expected))
        #expect(Self.law.tpot(raw) == Self.law.tpot(expected))
    }

    @Test("ttft and tpot are the sums of their terms; scaling by ones changes nothing")
    func terms() {
        let f = LatencyFeatures(prefillTokensAhead: 1000, decodingSequences: 4, batchSequences: 8)
        #expect(Self.law.ttft(f) == 2e-5 * 1000 + 3e-5 * 4 + 0.01)
        #expect(Self.law.tpot(f) == 0.004 + 5e-5 * 8)
        #expect(abs((Self.law.ttftTerms(f) + Self.law.tpotTerms(f)).sum() - (Self.law.ttft(f) + Self.law.tpot(f))) < 1e-15)
        #expect(Self.law.scaled(by: SIMD8(1, 1, 1, 1, 1, 0, 0, 0)) == Self.law)
        #expect(Self.law.scaled(by: SIMD8(2, 1, 1, 1, 3, 0, 0, 0)).prefillPerToken == 4e-5)
    }

    @Test("the estimator's coefficients are its prior scaled by what it learned")
    func estimator() {
        var e = OnlineLatencyEstimator(prior: Self.law)
        for i in 0..<30 {
            let f = LatencyFeatures(prefillTokensAhead: Double(100 * i), decodingSequences: Double(i % 5), batchSequences: Double(1 + i % 7))
            let first = 2 * Self.law.ttft(f)
            e.learn(LatencyObservation(features: f, outputTokens: 20, firstTokenSeconds: first, totalSeconds: first + 19 * 2 * Self.law.tpot(f)))
        }
        #expect(e.coefficients == Self.law.scaled(by: e.scale))
        // Everything took twice the law: the learned law predicts about twice.
        let f = LatencyFeatures(prefillTokensAhead: 1500, decodingSequences: 2, batchSequences: 4)
        #expect(abs(e.coefficients.ttft(f) / Self.law.ttft(f) - 2) < 0.2)
    }
}
