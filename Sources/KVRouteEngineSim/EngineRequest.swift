/// What a client asks one engine to do, already tokenized.
public struct EngineRequest: Sendable {
    public var promptTokens: [UInt32]
    public var maxTokens: Int
    /// Forces the engine to produce exactly these tokens instead of its deterministic text
    /// (used by workloads that replay known answers).
    public var forcedOutput: [UInt32]?
    /// The LoRA adapter the request names (its `model`), which keys every block's hash,
    /// and the adapter's id (vLLM's `lora_int_id`: 1 for the first `--lora-modules` entry).
    public var lora: LoRAAdapter?
    /// The request's `cache_salt`: keys the first block's hash, so only requests with the
    /// same salt share a prefix.
    public var cacheSalt: String?
    /// vLLM's `ignore_eos`: never end on the end-of-sequence token.
    public var ignoreEOS = false
    /// vLLM's `min_tokens`: no end-of-sequence token before this many output tokens.
    public var minTokens = 0

    public init(promptTokens: [UInt32], maxTokens: Int, forcedOutput: [UInt32]? = nil, lora: LoRAAdapter? = nil, cacheSalt: String? = nil,
                ignoreEOS: Bool = false, minTokens: Int = 0) {
        self.promptTokens = promptTokens
        self.maxTokens = maxTokens
        self.ignoreEOS = ignoreEOS
        self.minTokens = minTokens
        self.forcedOutput = forcedOutput
        self.lora = lora
        self.cacheSalt = cacheSalt
    }
}

/// A LoRA adapter as the engine knows it: the name requests use as `model`, and its id.
public struct LoRAAdapter: Sendable, Hashable {
    public var name: String
    public var id: Int

    public init(name: String, id: Int) {
        self.name = name
        self.id = id
    }
}

/// Identifies a request inside one engine.
public typealias EngineRequestID = UInt64

/// Why a request stopped.
public enum FinishReason: String, Sendable, Hashable {
    case length
    case stop
    case abort
}

/// The outcome of a finished request, in engine time (seconds).
public struct FinishedRequest: Sendable, Hashable {
    public var id: EngineRequestID
    public var promptTokens: Int
    public var cachedTokens: Int
    public var completionTokens: Int
    public var reason: FinishReason
    public var arrival: Double
    public var firstTokenTime: Double
    public var finishTime: Double
    public var preemptions: Int

    public var timeToFirstToken: Double { firstTokenTime - arrival }
    public var endToEnd: Double { finishTime - arrival }
}

/// What one engine step produced for one request.
public struct StepOutput: Sendable {
    public var id: EngineRequestID
    /// The token sampled this step, if the request caught up with its sequence.
    public var token: UInt32?
    public var isFirstToken: Bool
    /// Set when the request ended this step.
    public var finished: FinishedRequest?
}

/// One engine step: how long it takes and what it produced at its end.
public struct StepResult: Sendable {
    public var start: Double
    public var duration: Double
    public var outputs: [StepOutput]
    public var prefillTokens: Int
    public var decodingSequences: Int
    public var preemptions: Int
    public var end: Double { start + duration }
}
