/// How long one engine step takes. A step runs the prefill chunks and decodes the scheduler
/// picked; its duration is what a client sees as queueing, TTFT and inter-token latency:
///
///     step = stepOverhead
///          + prefillPerToken × (uncached prompt tokens computed in this step)
///          + (decodeBase + decodePerSequence × decoding sequences)   if any sequence decodes
///
/// multiplied by `1 + jitter × u` with `u` uniform in [-1, 1] from the engine's seeded RNG.
/// So TTFT = queueing + overhead + uncached tokens × prefillPerToken, and inter-token latency
/// grows with the running batch. Defaults are in seconds and approximate Llama-3.2-3B (bf16)
/// on one H100: ~25k prefill tokens/s, ~6 ms per token at batch 1, ~16 ms at batch 256.
public struct LatencyModel: Sendable, Hashable {
    public var stepOverhead: Double
    public var prefillPerToken: Double
    public var decodeBase: Double
    public var decodePerSequence: Double
    public var jitter: Double

    public init(
        stepOverhead: Double = 0.0015,
        prefillPerToken: Double = 0.000_04,
        decodeBase: Double = 0.0045,
        decodePerSequence: Double = 0.000_04,
        jitter: Double = 0.05
    ) {
        self.stepOverhead = stepOverhead
        self.prefillPerToken = prefillPerToken
        self.decodeBase = decodeBase
        self.decodePerSequence = decodePerSequence
        self.jitter = jitter
    }

    /// Nominal duration of a step before jitter.
    public func stepDuration(prefillTokens: Int, decodingSequences: Int) -> Double {
        var d = stepOverhead + prefillPerToken * Double(prefillTokens)
        if decodingSequences > 0 {
            d += decodeBase + decodePerSequence * Double(decodingSequences)
        }
        return d
    }

    func validate() throws(EngineError) {
        for (name, v) in [("step overhead", stepOverhead), ("prefill per token", prefillPerToken),
                          ("decode base", decodeBase), ("decode per sequence", decodePerSequence)] where v < 0 || !v.isFinite {
            throw EngineError(code: .invalidConfiguration, message: "\(name) latency must be a non-negative number, got \(v)")
        }
        guard jitter >= 0, jitter < 1 else {
            throw EngineError(code: .invalidConfiguration, message: "jitter must be in [0, 1), got \(jitter)")
        }
    }
}
