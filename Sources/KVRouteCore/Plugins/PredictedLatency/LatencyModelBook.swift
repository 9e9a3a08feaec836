/// What the predictor keeps for the decision of one request, to learn from at its end.
public struct LatencyRecord: Sendable, Hashable {
    /// The chosen endpoint's features, excluding the request's own prompt tokens.
    public var queued: LatencyFeatures
    /// The request's own uncached prompt tokens there, as estimated at decision time.
    public var ownUncachedTokens: Double
    /// Characters of the rendered prompt (to learn characters per token from `usage`).
    public var promptCharacters: Int
    /// The prediction the decision used.
    public var predicted: LatencyPrediction

    public init(queued: LatencyFeatures, ownUncachedTokens: Double, promptCharacters: Int, predicted: LatencyPrediction) {
        self.queued = queued
        self.ownUncachedTokens = ownUncachedTokens
        self.promptCharacters = promptCharacters
        self.predicted = predicted
    }
}

/// How a routed request ended, as the predictor learns from it.
public struct LatencyOutcome: Sendable, Hashable {
    /// Token counts from the answer's `usage`, when it carried one.
    public var promptTokens: Int?
    public var cachedTokens: Int?
    public var completionTokens: Int?
    /// Seconds to the first byte when the answer streamed (nil: answered whole).
    public var firstByteSeconds: Double?
    public var totalSeconds: Double

    public init(promptTokens: Int? = nil, cachedTokens: Int? = nil, completionTokens: Int? = nil, firstByteSeconds: Double? = nil, totalSeconds: Double) {
        self.promptTokens = promptTokens
        self.cachedTokens = cachedTokens
        self.completionTokens = completionTokens
        self.firstByteSeconds = firstByteSeconds
        self.totalSeconds = totalSeconds
    }
}

/// The predictor's learned state: one ``OnlineLatencyEstimator`` per endpoint, and three
/// pool-wide running means that turn a prompt's characters into tokens and fill in what a
/// request does not say (its output length) or a scrape does not (a waiting request's size).
/// A value type: whoever owns it decides where it lives and how it is locked.
public struct LatencyModelBook: Sendable {
    public let prior: LatencyCoefficients
    /// Rows each endpoint's estimator remembers.
    public let memory: Double
    private var estimators: [EndpointAddress: OnlineLatencyEstimator] = [:]

    /// Prompt characters per token, from `usage.prompt_tokens`. Starts at 4, the usual
    /// figure for English BPE text and the one `prefix-cache-scorer` assumes for its blocks.
    public private(set) var charactersPerToken = 4.0
    /// Mean completion tokens per answer. Starts at 128, an order of magnitude for a chat
    /// answer; after ~20 answers it is what this pool's traffic does.
    public private(set) var meanOutputTokens = 128.0
    /// Mean uncached prompt tokens per request, for turning a scraped waiting count into
    /// work. Starts at 512, replaced the same way.
    public private(set) var meanUncachedTokens = 512.0
    /// Weight of one answer in the running means (about the last 20).
    static let meanRate = 0.05

    public init(prior: LatencyCoefficients = .prior, memory: Double = 200) {
        self.prior = prior
        self.memory = memory
    }

    /// The coefficients learned for `endpoint` (the prior when it has not answered yet).
    public func coefficients(_ endpoint: EndpointAddress) -> LatencyCoefficients {
        estimators[endpoint]?.coefficients ?? prior
    }

    public func estimator(_ endpoint: EndpointAddress) -> OnlineLatencyEstimator? { estimators[endpoint] }

    /// Tokens in `characters` of prompt text.
    @inline(__always)
    public func tokens(characters: Int) -> Double { Double(max(characters, 0)) / charactersPerToken }

    @inline(__always)
    public func predict(_ endpoint: EndpointAddress, features f: LatencyFeatures) -> LatencyPrediction {
        if let e = estimators[endpoint] {
            return LatencyPrediction(ttft: e.coefficients.ttft(f), tpot: e.coefficients.tpot(f), relativeDeviation: e.relativeDeviation)
        }
        return LatencyPrediction(ttft: prior.ttft(f), tpot: prior.tpot(f), relativeDeviation: OnlineLatencyEstimator.initialError * 1.2533)
    }

    /// Learns from a request that `endpoint` answered. Without `usage`, a streamed answer
    /// still teaches TTFT (with the decision's own token estimate); a whole one teaches
    /// nothing, since its time cannot be split between prefill and decode.
    public mutating func learn(_ endpoint: EndpointAddress, record: LatencyRecord, outcome: LatencyOutcome) {
        var own = record.ownUncachedTokens
        if let prompt = outcome.promptTokens, prompt > 0 {
            own = Double(max(prompt - (outcome.cachedTokens ?? 0), 0))
            if record.promptCharacters > 0 {
                let ratio = Double(record.promptCharacters) / Double(prompt)
                charactersPerToken += (min(max(ratio, 0.5), 32) - charactersPerToken) * Self.meanRate
            }
        }
        meanUncachedTokens += (own - meanUncachedTokens) * Self.meanRate
        var features = record.queued
        features.prefillTokensAhead += own
        let output: Int
        if let completion = outcome.completionTokens {
            output = completion
            meanOutputTokens += (Double(completion) - meanOutputTokens) * Self.meanRate
        } else {
            guard let first = outcome.firstByteSeconds else { return }
            estimators[endpoint, default: OnlineLatencyEstimator(prior: prior, memory: memory)]
                .learn(LatencyObservation(features: features, outputTokens: 1, firstTokenSeconds: first, totalSeconds: first))
            return
        }
        estimators[endpoint, default: OnlineLatencyEstimator(prior: prior, memory: memory)]
            .learn(LatencyObservation(features: features, outputTokens: output, firstTokenSeconds: outcome.firstByteSeconds, totalSeconds: outcome.totalSeconds))
    }

    /// The endpoint left the pool.
    public mutating func forget(_ endpoint: EndpointAddress) { estimators[endpoint] = nil }
}
