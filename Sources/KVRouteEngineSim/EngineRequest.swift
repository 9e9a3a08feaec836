/// What a client asks one engine to do, already tokenized.
public struct EngineRequest: Sendable {
    public var promptTokens: [UInt32]
    public var maxTokens: Int
    /// Forces the engine to produce exactly these tokens instead of its deterministic text
    /// (used by workloads that replay known answers).
    public var forcedOutput: [UInt32]?

    public init(promptTokens: [UInt32], maxTokens: Int, forcedOutput: [UInt32]? = nil) {
        self.promptTokens = promptTokens
        self.maxTokens = maxTokens
        self.forcedOutput = forcedOutput
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
