import Synchronization

/// Runs an EndpointPickerConfig for each request: its profile handler chooses the profile;
/// the profile runs the health filter, its filters, its weighted scorers and its picker over
/// the candidates and the ledger. The Scheduler owns fresh plugins built from the
/// configuration's specs and one ``RoutingLedger``; the whole decision and the admission
/// that follows it happen under one lock, so concurrent decisions see each other's requests
/// in flight. The core reads no clock: callers pass the time (`now`, seconds on their
/// monotonic clock) with each event.
public final class Scheduler: Sendable {
    public let config: EndpointPickerConfig
    public let plugins: EndpointPickerConfig.Plugins
    private let state: Mutex<State>

    struct State {
        var rng: SeededGenerator
        var ledger = RoutingLedger()
    }

    /// - Parameters:
    ///   - config: the configuration; its plugins are built afresh, and every state they
    ///     declare starts empty in this Scheduler's ledger.
    ///   - randomSeed: seed for tie-breaks and random pickers (nil: random).
    ///   - ringSize: `minimumRingSize` of the consistent-hash profile a handler implies.
    public init(config: EndpointPickerConfig, randomSeed: UInt64? = nil, ringSize: Int = ConsistentHashPicker.defaultRingSize) throws {
        self.config = config
        plugins = try config.instantiate(ringSize: ringSize)
        var system = SystemRandomNumberGenerator()
        var s = State(rng: SeededGenerator(seed: randomSeed ?? system.next()))
        for profile in plugins.profiles.values.sorted(by: { $0.name < $1.name }) {
            for spec in profile.ledgerStates { s.ledger.install(spec) }
        }
        state = Mutex(s)
    }

    /// The primary profile.
    public var profile: EndpointPickerConfig.Profile { plugins.primaryProfile }

    /// Decides for `request` and admits it to the ledger on the chosen endpoint.
    /// `headersOnly`: the request's body is unknown (the profile handler may send it
    /// elsewhere). `now`: the decision's time on the caller's clock.
    public func schedule(_ request: InferenceRequest, candidates all: [EndpointSnapshot], now: Double = 0, headersOnly: Bool = false) throws -> SchedulingResult {
        var candidates = all
        if let hint = request.subsetHint {
            let allowed = Set(hint)
            candidates = candidates.filter { allowed.contains($0.address) }
            guard !candidates.isEmpty else {
                throw KVRouteError(code: .noCandidates, message: hint.isEmpty ? "the subset hint allows no endpoint" : "no endpoint matches the subset hint \(hint.map(\.description))")
            }
        }
        guard !candidates.isEmpty else { throw KVRouteError(code: .noCandidates, message: "no endpoints are known") }

        let handler = plugins.handler
        let chosen = handler.profile(for: request, headersOnly: headersOnly).flatMap { plugins.profiles[$0] } ?? plugins.primaryProfile
        return try state.withLock { s in
            do {
                return try decide(request, candidates, profile: chosen, now: now, state: &s)
            } catch let e as KVRouteError where e.code == .noCandidates || e.code == .noCapacity {
                throw e
            } catch {
                guard let name = handler.fallback(after: error, in: chosen.name), let fallback = plugins.profiles[name] else { throw error }
                var r = try decide(request, candidates, profile: fallback, now: now, state: &s)
                r.fallbackReason = "picker-error: \(error)"
                return r
            }
        }
    }

    private func decide(_ request: InferenceRequest, _ all: [EndpointSnapshot], profile: EndpointPickerConfig.Profile, now: Double, state s: inout State) throws -> SchedulingResult {
        var candidates = all
        var filteredOut: [(EndpointAddress, String)] = []
        var context = SchedulingContext(request: request, now: now)
        func apply(_ f: any EndpointFilter) throws {
            let (kept, reason) = f.filter(candidates, context: &context)
            guard kept.count != candidates.count else { return }  // nothing filtered out
            let keptSet = Set(kept.map(\.address))
            for c in candidates where !keptSet.contains(c.address) { filteredOut.append((c.address, "\(f.name): \(reason)")) }
            candidates = kept
            guard !candidates.isEmpty else {
                throw KVRouteError(code: .noCandidates, message: "filter \"\(f.name)\" left no endpoint (\(reason))")
            }
        }
        if !profile.filters.contains(where: { $0 is HealthFilter }) { try apply(HealthFilter()) }
        for f in profile.filters { try apply(f) }

        // Raw scores in one flat array (candidate-major); the explanation keeps it as is.
        let scorers = profile.scorers
        var totals = [Double](repeating: 0, count: candidates.count)
        var raws = [Double](repeating: 0, count: candidates.count * scorers.count)
        for (j, (scorer, weight)) in scorers.enumerated() {
            let scores = scorer.score(candidates, context: &context, ledger: s.ledger)
            for i in candidates.indices {
                let raw = i < scores.count ? max(0, min(1, scores[i])) : 0
                totals[i] += raw * weight
                raws[i * scorers.count + j] = raw
            }
        }
        let scored = candidates.indices.map { (endpoint: candidates[$0], score: totals[$0]) }
        let picked = profile.picker.pick(scored, context: &context, ledger: s.ledger, using: &s.rng)
        guard let primary = picked.first else {
            throw context[note: SchedulingContext.rejection] ?? KVRouteError(code: .noCandidates, message: "the picker chose no endpoint")
        }
        // Fallbacks: the picker's extra endpoints, then every other candidate by score.
        var fallbacks = Array(picked.dropFirst())
        // Sorted as indices (stable, as before), so no snapshot is copied; `picked` is usually
        // one endpoint, where a linear scan beats hashing every address.
        let chosen = picked.count > 8 ? Set(picked) : nil
        fallbacks += candidates.indices
            .filter { i in !(chosen?.contains(candidates[i].address) ?? picked.contains(candidates[i].address)) }
            .sorted { totals[$0] > totals[$1] }
            .map { candidates[$0].address }

        s.ledger.admit(RequestRecord(
            requestID: request.requestID, endpoint: primary, session: request.sessionKey, admittedAt: now, profile: profile.name,
            context: context.retained))

        let explanation = DecisionExplanation(
            profile: profile.name, scorers: scorers.map { ($0.scorer.name, $0.scorer.type, $0.weight) }, endpoints: candidates.map(\.address), raw: raws, totals: totals,
            filteredOut: filteredOut,
            matchedPrefixBlocks: context.matchedPrefixBlocks[primary] ?? 0,
            totalPrefixBlocks: context.totalPrefixBlocks)
        return SchedulingResult(primary: primary, fallbacks: fallbacks, explanation: explanation)
    }

    /// Another endpoint than the one counted serves the request (a retry to a fallback): its
    /// in-flight count, its session and what the ledger's states learned move there.
    public func requestServed(requestID: String, by endpoint: EndpointAddress) {
        state.withLock { $0.ledger.move(requestID: requestID, to: endpoint) }
    }

    /// Called once per scheduled request when it ends, with what was observed.
    public func requestFinished(requestID: String, outcome: RequestOutcome) {
        state.withLock { $0.ledger.finish(requestID: requestID, outcome: outcome) }
    }

    /// The same with only the endpoint that answered (a fallback after a retry; nil when none did).
    public func requestFinished(requestID: String, servedBy: EndpointAddress?) {
        requestFinished(requestID: requestID, outcome: RequestOutcome(servedBy: servedBy))
    }

    /// Records where a session's request was actually served (when something else than a
    /// decision placed it).
    public func sessionServed(_ session: String, by endpoint: EndpointAddress) {
        state.withLock { $0.ledger.sessionServed(session, by: endpoint) }
    }

    /// Reads or changes the ledger under the Scheduler's lock (outside feeds, such as engine
    /// KV events, update their states here).
    public func withLedger<R>(_ body: (inout RoutingLedger) throws -> R) rethrows -> R {
        try state.withLock { try body(&$0.ledger) }
    }

    public func inFlight(_ e: EndpointAddress) -> Int { state.withLock { $0.ledger.inFlight(e) } }
    /// Requests routed and not yet finished, over every endpoint.
    public var inFlightTotal: Int { state.withLock { $0.ledger.inFlightTotal } }

    var prefixKeys: [LedgerKey<PrefixIndexState>] {
        plugins.profiles.values.flatMap { $0.scorers.compactMap { Self.prefixKey($0.scorer) } }
    }

    /// The prefix index a scorer keeps: its own, or the one inside `predicted-latency-scorer`.
    static func prefixKey(_ scorer: any EndpointScorer) -> LedgerKey<PrefixIndexState>? {
        (scorer as? PrefixCacheScorer)?.key ?? (scorer as? PredictedLatencyScorer)?.prefix.key
    }

    /// Block hashes held by the prefix indexes (all prefix scorers).
    public var prefixIndexSize: Int {
        let keys = Set(prefixKeys)
        return state.withLock { s in keys.reduce(0) { $0 + (s.ledger[$1]?.size ?? 0) } }
    }

    /// Matched / looked-up prefix blocks since start (the primary profile's first prefix scorer).
    public var prefixHitRatio: Double {
        guard let key = profile.scorers.lazy.compactMap({ Self.prefixKey($0.scorer) }).first ?? prefixKeys.first else { return 0 }
        return state.withLock { $0.ledger[key]?.hitRatio ?? 0 }
    }

    /// The endpoint left the pool: the ledger forgets it.
    public func forget(endpoint: EndpointAddress) {
        state.withLock { $0.ledger.endpointLeft(endpoint) }
    }
}
