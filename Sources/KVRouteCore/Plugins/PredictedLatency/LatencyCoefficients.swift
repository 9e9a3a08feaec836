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

extension LatencyCoefficients {
    /// Predicted time to first token, in seconds.
    @inline(__always)
    public func ttft(_ f: LatencyFeatures) -> Double {
        prefillPerToken * f.prefillTokensAhead + ttftPerDecodingSequence * f.decodingSequences + ttftBase
    }

    /// Predicted time per output token, in seconds.
    @inline(__always)
    public func tpot(_ f: LatencyFeatures) -> Double {
        tpotBase + tpotPerSequence * f.batchSequences
    }
}
