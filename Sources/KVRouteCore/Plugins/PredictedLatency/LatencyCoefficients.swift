/// The per-endpoint latency law the predictor uses, in seconds:
///
///     ttft ≈ a × prefill tokens ahead (incl. this request's uncached ones)
///          + b × sequences decoding meanwhile
///          + c
///     tpot ≈ d + e × sequences in the running batch
///
/// It mirrors how a continuous-batching engine (vLLM) spends a step: prefill is compute
/// bound and linear in tokens, a decode step costs a fixed weight read plus a KV read per
/// sequence, and a waiting prompt shares its steps with the batch's decodes.
public struct LatencyCoefficients: Sendable, Hashable {
    /// `a`: seconds per prompt token computed.
    public var prefillPerToken: Double
    /// `b`: seconds a waiting request loses per sequence decoding on the endpoint.
    public var ttftPerDecodingSequence: Double
    /// `c`: fixed part of TTFT (scheduling, one forward pass, the network).
    public var ttftBase: Double
    /// `d`: seconds per output token at batch size zero.
    public var tpotBase: Double
    /// `e`: seconds per output token added by each sequence in the batch.
    public var tpotPerSequence: Double

    public init(prefillPerToken: Double, ttftPerDecodingSequence: Double, ttftBase: Double, tpotBase: Double, tpotPerSequence: Double) {
        self.prefillPerToken = prefillPerToken
        self.ttftPerDecodingSequence = ttftPerDecodingSequence
        self.ttftBase = ttftBase
        self.tpotBase = tpotBase
        self.tpotPerSequence = tpotPerSequence
    }

    /// What an endpoint is assumed to be before kvroute has seen it answer: an 8B-class
    /// dense model in bf16 on one H100 SXM running vLLM, derived from the hardware rather
    /// than fitted to any workload:
    /// - `a` = 40 µs/token: prefill costs 2 × 8·10⁹ FLOP per token; 989 TFLOP/s dense bf16 at
    ///   ~40 % utilisation gives ~25k tokens/s.
    /// - `d` = 5 ms: a decode step reads the 16 GB of weights at 3.35 TB/s (~4.8 ms).
    /// - `e` = 40 µs: each sequence adds its KV read, ~130 kB per context token for
    ///   Llama-3-8B (32 layers × 8 KV heads × 128 × 2 × 2 bytes), ~130 MB at 1k tokens.
    /// - `b` = 40 µs: a waiting prompt shares about one step's decode work per sequence.
    /// - `c` = 10 ms: one decode-sized forward pass plus scheduling and the network hop.
    /// Every coefficient is a starting point only: the online estimator rescales each one per
    /// endpoint from what it observes, so a slower GPU or a bigger model is learned.
    public static let prior = LatencyCoefficients(
        prefillPerToken: 40e-6, ttftPerDecodingSequence: 40e-6, ttftBase: 0.010,
        tpotBase: 0.005, tpotPerSequence: 40e-6)
}

/// What the law needs to know about one endpoint for one request.
public struct LatencyFeatures: Sendable, Hashable {
    /// Prompt tokens the endpoint must compute before this request's first token: the
    /// uncached part of the requests queued ahead plus this request's own uncached part.
    public var prefillTokensAhead: Double
    /// Sequences decoding on the endpoint while this request waits for its first token.
    public var decodingSequences: Double
    /// Sequences in the batch while this request decodes (itself included).
    public var batchSequences: Double

    public init(prefillTokensAhead: Double, decodingSequences: Double, batchSequences: Double) {
        self.prefillTokensAhead = prefillTokensAhead
        self.decodingSequences = decodingSequences
        self.batchSequences = batchSequences
    }
}

extension LatencyFeatures {
    /// The features as the law reads them: no negative token or sequence count, and a batch
    /// of at least the request itself. Prediction and learning both read them through here.
    @inline(__always)
    public var clamped: LatencyFeatures {
        LatencyFeatures(prefillTokensAhead: max(prefillTokensAhead, 0), decodingSequences: max(decodingSequences, 0), batchSequences: max(batchSequences, 1))
    }
}

extension LatencyCoefficients {
    /// The law's TTFT terms, one lane per coefficient: (a × prefill tokens ahead, b ×
    /// sequences decoding, c, 0, 0); lanes 5…7 are 0. The online estimator learns one factor
    /// per lane (``scaled(by:)``).
    @inline(__always)
    public func ttftTerms(_ f: LatencyFeatures) -> SIMD8<Double> {
        let f = f.clamped
        return SIMD8(prefillPerToken * f.prefillTokensAhead, ttftPerDecodingSequence * f.decodingSequences, ttftBase, 0, 0, 0, 0, 0)
    }

    /// The law's TPOT terms in the same lanes: (0, 0, 0, d, e × batch sequences).
    @inline(__always)
    public func tpotTerms(_ f: LatencyFeatures) -> SIMD8<Double> {
        SIMD8(0, 0, 0, tpotBase, tpotPerSequence * f.clamped.batchSequences, 0, 0, 0)
    }

    /// Predicted time to first token, in seconds.
    @inline(__always)
    public func ttft(_ f: LatencyFeatures) -> Double {
        let t = ttftTerms(f)
        return t[0] + t[1] + t[2]
    }

    /// Predicted time per output token, in seconds.
    @inline(__always)
    public func tpot(_ f: LatencyFeatures) -> Double {
        let t = tpotTerms(f)
        return t[3] + t[4]
    }

    /// Each coefficient multiplied by its lane of `scale` (the lanes of ``ttftTerms(_:)``
    /// and ``tpotTerms(_:)``).
    public func scaled(by scale: SIMD8<Double>) -> LatencyCoefficients {
        LatencyCoefficients(
            prefillPerToken: prefillPerToken * scale[0], ttftPerDecodingSequence: ttftPerDecodingSequence * scale[1],
            ttftBase: ttftBase * scale[2], tpotBase: tpotBase * scale[3], tpotPerSequence: tpotPerSequence * scale[4])
    }
}
