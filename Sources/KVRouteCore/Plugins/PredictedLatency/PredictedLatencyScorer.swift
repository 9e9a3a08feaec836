/// `predicted-latency-scorer`: for each candidate, the latency this request would see there,
/// predicted from the endpoint's learned ``LatencyCoefficients``: TTFT from the prompt tokens
/// queued ahead (the router's own in-flight requests, or the engine's waiting count,
/// whichever is more) plus this prompt's part the endpoint probably lacks (its prefix index,
/// like `prefix-cache-scorer`'s), and the sequences decoding; TPOT from the batch it joins.
/// Cost = TTFT + decodeWeight × (mean output tokens − 1) × TPOT; score = lowest cost / cost,
/// so the best endpoint scores 1 and one twice as slow 0.5.
///
/// Parameters (see README.md): `blockSize`, `hashBlockSize`, `maxPrefixBlocksToMatch`,
/// `lruCapacityPerServer` (its prefix index), `memory` (rows each endpoint's estimator
/// remembers), `decodeWeight`.
public struct PredictedLatencyScorer: EndpointScorer {
    public let type = "predicted-latency-scorer"
    public let name: String
    /// The prefix index this scorer keeps, in its own ledger state.
    public let prefix: PrefixCacheScorer
    public let memory: Double
    public let decodeWeight: Double

    /// What the scorer noted about the request, for its state and `predicted-latency-picker`.
    public struct Note: Sendable {
        public struct Candidate: Sendable {
            /// Features without the request's own tokens.
            public var queued: LatencyFeatures
            public var ownUncachedTokens: Double
            public var prediction: LatencyPrediction
            /// Seconds: the quantity the score compares.
            public var cost: Double
        }
        public var promptCharacters: Int
        public var candidates: [EndpointAddress: Candidate]
    }

    public static let note = NoteKey<Note>("predicted-latency")

    public init(name: String, blockBytes: Int = 64, maxBlocks: Int = 2048, lruCapacityPerServer: Int = 31_250, memory: Double = 200, decodeWeight: Double = 1) {
        self.name = name
        self.prefix = PrefixCacheScorer(name: "\(name)/prefix", blockBytes: blockBytes, maxBlocks: maxBlocks, lruCapacityPerServer: lruCapacityPerServer)
        self.memory = memory
        self.decodeWeight = decodeWeight
    }

    static func make(name: String, parameters p: inout PluginParameters) throws -> PredictedLatencyScorer {
        let tokens = try p.int("blockSize", default: 16, min: 1)
        let chars = try p.int("hashBlockSize", default: tokens * 4, min: 1)
        let maxBlocks = try p.int("maxPrefixBlocksToMatch", default: 2048, min: 1)
        let capacity = try p.int("lruCapacityPerServer", default: 31_250, min: 1)
        let memory = try p.double("memory", default: 200, min: 2)
        let decodeWeight = try p.double("decodeWeight", default: 1, min: 0)
        return PredictedLatencyScorer(name: name, blockBytes: chars, maxBlocks: maxBlocks, lruCapacityPerServer: capacity, memory: memory, decodeWeight: decodeWeight)
    }

    public var key: LedgerKey<PredictedLatencyState> { LedgerKey("predicted-latency-scorer/\(name)") }

    public var ledgerStates: [LedgerStateSpec] {
        let memory = self.memory
        return prefix.ledgerStates + [LedgerStateSpec(key) { PredictedLatencyState(book: LatencyModelBook(memory: memory)) }]
    }

    public func score(_ candidates: [EndpointSnapshot], context: inout SchedulingContext, ledger: RoutingLedger) -> [Double] {
        _ = prefix.score(candidates, context: &context, ledger: ledger)
        let matched = context[note: prefix.notes.matched] ?? [:]
        let state = ledger[key] ?? PredictedLatencyState(book: LatencyModelBook(memory: memory))
        let book = state.book
        var characters = 0
        PromptText.stream(context.request.prompt) { characters += $0.count; return true }

        var note = Note(promptCharacters: characters, candidates: [:])
        note.candidates.reserveCapacity(candidates.count)
        var costs = [Double](repeating: .infinity, count: candidates.count)
        var best = Double.infinity
        let outputSteps = max(book.meanOutputTokens - 1, 0) * decodeWeight
        for (i, c) in candidates.enumerated() {
            let held = min((matched[c.address] ?? 0) * prefix.blockBytes, characters)
            let own = book.tokens(characters: characters - held)
            let queued = state.load(c, now: context.now).queuedFeatures(meanUncachedTokens: book.meanUncachedTokens)
            var f = queued
            f.prefillTokensAhead += own
            var p = book.predict(c.address, features: f)
            // A full engine admits its queue as running requests finish: the wait can exceed
            // what the queued tokens take to compute.
            let wait = state.admissionWait(c)
            if wait > 0 {
                var alone = f
                alone.prefillTokensAhead = own
                p.ttft = max(p.ttft, wait + book.predict(c.address, features: alone).ttft)
            }
            let cost = p.ttft + outputSteps * p.tpot
            costs[i] = cost
            best = min(best, cost)
            note.candidates[c.address] = .init(queued: queued, ownUncachedTokens: own, prediction: p, cost: cost)
        }
        context[note: Self.note] = note
        guard best.isFinite, best > 0 else { return costs.map { _ in 0 } }
        return costs.map { best / $0 }
    }
}
