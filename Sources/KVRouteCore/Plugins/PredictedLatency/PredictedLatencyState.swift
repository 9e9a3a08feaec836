/// The predicted-latency scorer's state in the ``RoutingLedger``: the learned model
/// (``LatencyModelBook``) and the requests the router has in flight per endpoint with the
/// prompt tokens each still makes its endpoint compute.
///
/// A request counts as queued (its uncached tokens ahead of any newcomer, at most what its
/// endpoint can compute by then) until its predicted first token, then as decoding; the ledger hears no first byte before the finish, so the
/// prediction stands in for it. It learns from every finished request the scorer placed.
public struct PredictedLatencyState: LedgerState {
    public internal(set) var book: LatencyModelBook

    struct Pending: Sendable {
        var requestID: String
        var ownTokens: Double
        var firstTokenAt: Double
        var record: LatencyRecord?
    }

    private var pending: [EndpointAddress: [Pending]] = [:]

    /// Per endpoint: when it last answered, and the running mean interval between answers
    /// that came while it had more work in flight (its service rate when busy).
    struct Throughput: Sendable {
        var lastAnswer: Double
        var busyInterval: Double?
    }

    private var throughput: [EndpointAddress: Throughput] = [:]

    /// Seconds between two answers of `endpoint` while it is busy (nil: not measured yet).
    public func busyInterval(_ endpoint: EndpointAddress) -> Double? { throughput[endpoint]?.busyInterval }

    /// How long a request waits on `snapshot`'s endpoint before it is admitted at all: the
    /// engine's waiting queue drains at its busy service rate (Little's law), so the last
    /// of `waitingRequests` starts after about that many answers. A linear model in the
    /// tokens ahead cannot see this: when the batch or the KV cache is full, a waiting
    /// request waits for running ones to finish, not for prefill compute.
    @inline(__always)
    public func admissionWait(_ snapshot: EndpointSnapshot) -> Double {
        guard snapshot.waitingRequests > 0, let interval = throughput[snapshot.address]?.busyInterval else { return 0 }
        return Double(snapshot.waitingRequests) * interval
    }

    public init(book: LatencyModelBook = LatencyModelBook()) {
        self.book = book
    }

    /// Requests in flight on `endpoint` as this state counts them.
    public func pendingCount(_ endpoint: EndpointAddress) -> Int { pending[endpoint]?.count ?? 0 }

    /// What is known about `snapshot`'s endpoint at time `now`.
    @inline(__always)
    public func load(_ snapshot: EndpointSnapshot, now: Double) -> EndpointLoad {
        var l = EndpointLoad(waitingRequests: snapshot.waitingRequests, runningRequests: snapshot.runningRequests, maxNumSeqs: snapshot.maxNumSeqs)
        if let list = pending[snapshot.address] {
            // A request whose first token is due in t seconds has at most t / a of its
            // tokens left to compute: the one being prefilled counts only its remainder.
            let perToken = 1 / book.coefficients(snapshot.address).prefillPerToken
            for p in list {
                if p.firstTokenAt > now {
                    l.routedPrefillTokens += min(p.ownTokens, (p.firstTokenAt - now) * perToken)
                    l.routedWaiting += 1
                } else {
                    l.routedDecoding += 1
                }
            }
        }
        return l
    }

    public mutating func learn(_ event: LedgerEvent) {
        switch event {
        case .admitted(let r):
            append(entry(for: r), to: r.endpoint)
        case .moved(let r, let from):
            _ = take(r.requestID, from: from)
            append(entry(for: r), to: r.endpoint)
        case .finished(let r, let o):
            let p = take(r.requestID, from: r.endpoint)
            if case .answered(let status) = o.result, (status ?? 200) < 400 { noteAnswer(r.endpoint, at: o.finishedAt) }
            guard let record = p?.record else { return }
            if case .answered(let status) = o.result, (status ?? 200) < 400 {
                let total = o.finishedAt - r.admittedAt
                guard total > 0, total.isFinite else { return }
                book.learn(r.endpoint, record: record, outcome: Self.outcome(o, total: total))
            }
        case .endpointLeft(let e):
            pending[e] = nil
            throughput[e] = nil
            book.forget(e)
        }
    }

    /// An answer from `endpoint` at `t`: the interval since its previous one counts towards
    /// its busy service rate when other requests stayed in flight there.
    private mutating func noteAnswer(_ endpoint: EndpointAddress, at t: Double) {
        guard var tp = throughput[endpoint] else {
            throughput[endpoint] = Throughput(lastAnswer: t)
            return
        }
        let gap = t - tp.lastAnswer
        if gap >= 0, pendingCount(endpoint) > 0 {
            tp.busyInterval = tp.busyInterval.map { $0 + (gap - $0) * LatencyModelBook.meanRate } ?? gap
        }
        tp.lastAnswer = max(tp.lastAnswer, t)
        throughput[endpoint] = tp
    }

    /// Per output token, no engine is faster than this: an answer whose bytes after the first
    /// took less came whole (not streamed), so its first byte says nothing about its TTFT.
    static let fastestTokenSeconds = 0.0002

    static func outcome(_ o: RequestOutcome, total: Double) -> LatencyOutcome {
        var first = o.timeToFirstByte.map { min(max($0, 0), total) }
        // A whole answer's first byte comes with its last token; a stream's is its first.
        if o.streamed == false { first = nil }
        if o.streamed == nil, let f = first, let n = o.completionTokens, n > 1, total - f < Double(n - 1) * fastestTokenSeconds { first = nil }
        if o.streamed == nil, let f = first, o.completionTokens == nil, total - f < fastestTokenSeconds { first = nil }
        return LatencyOutcome(
            promptTokens: o.promptTokens, cachedTokens: o.cachedTokens, completionTokens: o.completionTokens,
            firstByteSeconds: first, totalSeconds: total)
    }

    /// The entry for a request on `r.endpoint`, from what the scorer noted for that endpoint
    /// (or, when another rule placed it, an average request).
    private func entry(for r: RequestRecord) -> Pending {
        if let note = r.context[note: PredictedLatencyScorer.note], let c = note.candidates[r.endpoint] {
            let record = LatencyRecord(queued: c.queued, ownUncachedTokens: c.ownUncachedTokens, promptCharacters: note.promptCharacters, predicted: c.prediction)
            return Pending(requestID: r.requestID, ownTokens: c.ownUncachedTokens, firstTokenAt: r.admittedAt + c.prediction.ttft, record: record)
        }
        let tokens = book.meanUncachedTokens
        let ttft = book.coefficients(r.endpoint).ttft(LatencyFeatures(prefillTokensAhead: tokens, decodingSequences: 0, batchSequences: 1))
        return Pending(requestID: r.requestID, ownTokens: tokens, firstTokenAt: r.admittedAt + ttft, record: nil)
    }

    private mutating func append(_ p: Pending, to endpoint: EndpointAddress) {
        pending[endpoint, default: []].append(p)
    }

    private mutating func take(_ requestID: String, from endpoint: EndpointAddress) -> Pending? {
        if let i = pending[endpoint]?.firstIndex(where: { $0.requestID == requestID }) {
            let p = pending[endpoint]!.remove(at: i)
            if pending[endpoint]!.isEmpty { pending[endpoint] = nil }
            return p
        }
        for (e, list) in pending {
            if let i = list.firstIndex(where: { $0.requestID == requestID }) {
                let p = pending[e]!.remove(at: i)
                if pending[e]!.isEmpty { pending[e] = nil }
                return p
            }
        }
        return nil
    }
}
