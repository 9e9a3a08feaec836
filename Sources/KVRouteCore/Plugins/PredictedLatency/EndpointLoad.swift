/// What is known about one endpoint's work when a request is placed: the router's own
/// ledger of what it sent there, and the engine's last scraped gauges. The two disagree in
/// useful ways: the ledger is current but misses traffic other routers send, the scrape
/// sees everything but lags, so each feature takes the larger of the two.
public struct EndpointLoad: Sendable, Hashable {
    /// Uncached prompt tokens of the requests routed there that have not answered yet.
    public var routedPrefillTokens: Double
    /// Requests routed there that have not answered yet (queued or prefilling).
    public var routedWaiting: Int
    /// Requests routed there that are answering (decoding).
    public var routedDecoding: Int
    /// `vllm:num_requests_waiting`.
    public var waitingRequests: Int
    /// `vllm:num_requests_running`.
    public var runningRequests: Int
    /// The engine's batch limit, when known.
    public var maxNumSeqs: Int?

    public init(
        routedPrefillTokens: Double = 0, routedWaiting: Int = 0, routedDecoding: Int = 0,
        waitingRequests: Int = 0, runningRequests: Int = 0, maxNumSeqs: Int? = nil
    ) {
        self.routedPrefillTokens = routedPrefillTokens
        self.routedWaiting = routedWaiting
        self.routedDecoding = routedDecoding
        self.waitingRequests = waitingRequests
        self.runningRequests = runningRequests
        self.maxNumSeqs = maxNumSeqs
    }

    /// The features for a request whose uncached part here is `ownUncachedTokens`.
    /// - Parameter meanUncachedTokens: the uncached prompt tokens of an average request,
    ///   to turn the engine's waiting count into tokens.
    @inline(__always)
    public func features(ownUncachedTokens: Double, meanUncachedTokens: Double) -> LatencyFeatures {
        let queued = max(routedPrefillTokens, Double(waitingRequests) * meanUncachedTokens)
        let decoding = max(runningRequests, routedDecoding)
        var batch = Double(max(runningRequests + waitingRequests, routedWaiting + routedDecoding) + 1)
        if let limit = maxNumSeqs, limit > 0 { batch = min(batch, Double(limit)) }
        return LatencyFeatures(
            prefillTokensAhead: queued + max(ownUncachedTokens, 0), decodingSequences: Double(decoding), batchSequences: batch)
    }

    /// The same, with `features.prefillTokensAhead` excluding the request's own tokens: what
    /// a record keeps, so the engine's own count can replace the estimate at the end.
    @inline(__always)
    public func queuedFeatures(meanUncachedTokens: Double) -> LatencyFeatures {
        features(ownUncachedTokens: 0, meanUncachedTokens: meanUncachedTokens)
    }
}

/// A predicted latency for one request on one endpoint.
public struct LatencyPrediction: Sendable, Hashable {
    /// Mean time to first token, seconds.
    public var ttft: Double
    /// Mean time per output token, seconds.
    public var tpot: Double
    /// Relative standard deviation of this endpoint's predictions so far.
    public var relativeDeviation: Double

    public init(ttft: Double, tpot: Double, relativeDeviation: Double) {
        self.ttft = ttft
        self.tpot = tpot
        self.relativeDeviation = relativeDeviation
    }

    /// The request's expected latency to its last token when it produces `outputTokens`.
    @inline(__always)
    public func endToEnd(outputTokens: Double) -> Double { ttft + max(outputTokens - 1, 0) * tpot }

    /// The `z`-deviation upper estimate of a latency (z = 1.28 for the 90th percentile).
    @inline(__always)
    public func upper(_ value: Double, z: Double) -> Double { value * (1 + z * relativeDeviation) }
}
