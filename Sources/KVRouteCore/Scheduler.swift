import Synchronization

/// Runs an EndpointPickerConfig's profile for each request: the health filter, the
/// profile's filters, its weighted scorers, its picker. The whole decision happens under one
/// lock, together with the bookkeeping that must see it atomically: the in-flight count of
/// the chosen endpoint goes up at pick time (so concurrent decisions see each other), the
/// session remembers its endpoint, and stateful scorers learn the pick. When another endpoint
/// ends up serving (a retry to a fallback), ``requestServed(requestID:by:)`` moves all three.
public final class Scheduler: Sendable {
    public let profile: EndpointPickerConfig.Profile
    private let health: HealthFilter
    private let state: Mutex<State>

    struct State {
        var rng: SeededGenerator
        var inFlight: [EndpointAddress: Int] = [:]
        var requests: [String: Routed] = [:]
        var sessions = SessionMemory(capacity: 100_000)
    }

    /// A request in flight: where it is counted, what the scorers learned from its pick (to
    /// teach another endpoint if that one serves it), and its session.
    struct Routed {
        var endpoint: EndpointAddress
        var learned: SchedulingContext?
        var session: String?
    }

    /// - Parameters:
    ///   - config: the configuration; its plugins are instantiated afresh from its source so
    ///     two schedulers never share a prefix index.
    ///   - randomSeed: seed for tie-breaks and random pickers (nil: random).
    public init(config: EndpointPickerConfig, randomSeed: UInt64? = nil) throws {
        let fresh = try EndpointPickerConfig.load(yaml: config.source)
        self.profile = fresh.primaryProfile
        self.health = profile.filters.compactMap { $0 as? HealthFilter }.first ?? HealthFilter()
        var system = SystemRandomNumberGenerator()
        self.state = Mutex(State(rng: SeededGenerator(seed: randomSeed ?? system.next())))
    }

    public func schedule(_ request: InferenceRequest, candidates all: [EndpointSnapshot]) throws -> SchedulingResult {
        var candidates = all
        var filteredOut: [(EndpointAddress, String)] = []
        if let hint = request.subsetHint {
            let allowed = Set(hint)
            candidates = candidates.filter { allowed.contains($0.address) }
            guard !candidates.isEmpty else {
                throw KVRouteError(code: .noCandidates, message: hint.isEmpty ? "the subset hint allows no endpoint" : "no endpoint matches the subset hint \(hint.map(\.description))")
            }
        }
        guard !candidates.isEmpty else { throw KVRouteError(code: .noCandidates, message: "no endpoints are known") }

        return try state.withLock { s in
            var context = SchedulingContext(
                request: request, inFlight: s.inFlight,
                sessionEndpoint: request.sessionKey.flatMap { s.sessions.get($0) })
            func apply(_ f: any EndpointFilter) throws {
                let (kept, reason) = f.filter(candidates, context: &context)
                let keptSet = Set(kept.map(\.address))
                for c in candidates where !keptSet.contains(c.address) { filteredOut.append((c.address, "\(f.name): \(reason)")) }
                candidates = kept
                guard !candidates.isEmpty else {
                    throw KVRouteError(code: .noCandidates, message: "filter \"\(f.name)\" left no endpoint (\(reason))")
                }
            }
            if !profile.filters.contains(where: { $0 is HealthFilter }) { try apply(health) }
            for f in profile.filters { try apply(f) }

            var totals = [Double](repeating: 0, count: candidates.count)
            var entries = [[ScoreBreakdown.Entry]](repeating: [], count: candidates.count)
            for (scorer, weight) in profile.scorers {
                let scores = scorer.score(candidates, context: &context)
                for i in candidates.indices {
                    let raw = i < scores.count ? max(0, min(1, scores[i])) : 0
                    totals[i] += raw * weight
                    entries[i].append(.init(plugin: scorer.name, type: scorer.type, raw: raw, weight: weight))
                }
            }
            let scored = candidates.indices.map { (endpoint: candidates[$0], score: totals[$0]) }
            let picked = profile.picker.pick(scored, using: &s.rng)
            guard let primary = picked.first else {
                throw KVRouteError(code: .noCandidates, message: "the picker chose no endpoint")
            }
            // Fallbacks: the picker's extra endpoints, then every other candidate by score.
            var fallbacks = Array(picked.dropFirst())
            let chosen = Set(picked)
            fallbacks += scored.filter { !chosen.contains($0.endpoint.address) }.sorted { $0.score > $1.score }.map(\.endpoint.address)

            for (scorer, _) in profile.scorers { scorer.picked(primary, context: context) }
            // What a fallback must learn if it serves: the prompt's block hashes, not the prompt.
            var learned = SchedulingContext(
                request: InferenceRequest(requestID: request.requestID, model: request.model, apiKind: request.apiKind, prompt: .none),
                inFlight: [:], sessionEndpoint: nil)
            learned.prefixHashes = context.prefixHashes
            learned.matchedPrefixBlocks = context.matchedPrefixBlocks
            s.admit(request.requestID, Routed(endpoint: primary, learned: learned, session: request.sessionKey))

            let explanation = DecisionExplanation(
                profile: profile.name,
                candidates: candidates.indices.map { ScoreBreakdown(endpoint: candidates[$0].address, scores: entries[$0], total: totals[$0]) },
                filteredOut: filteredOut,
                matchedPrefixBlocks: context.matchedPrefixBlocks[primary] ?? 0,
                totalPrefixBlocks: context.totalPrefixBlocks)
            return SchedulingResult(primary: primary, fallbacks: fallbacks, explanation: explanation)
        }
    }

    /// Counts a request another policy routed (the consistent hash for a session known from
    /// headers alone) in the in-flight ledger, and remembers its session's endpoint.
    public func requestRouted(requestID: String, to endpoint: EndpointAddress, session: String?) {
        state.withLock { $0.admit(requestID, Routed(endpoint: endpoint, learned: nil, session: session)) }
    }

    /// Another endpoint than the one counted serves the request (a retry to a fallback): its
    /// in-flight count moves there, the prefix index learns the endpoint that holds the
    /// prompt now, and the session remembers it.
    public func requestServed(requestID: String, by endpoint: EndpointAddress) {
        state.withLock { s in s.move(requestID, to: endpoint, scorers: profile.scorers.map(\.scorer)) }
    }

    /// Called once per scheduled request when it ends; `servedBy` is the endpoint that
    /// answered (a fallback after a retry), or nil when none did.
    public func requestFinished(requestID: String, servedBy: EndpointAddress?) {
        state.withLock { s in
            if let servedBy { s.move(requestID, to: servedBy, scorers: profile.scorers.map(\.scorer)) }
            if let r = s.requests.removeValue(forKey: requestID) { s.release(r.endpoint) }
        }
    }

    /// Records where a session's request was actually served (after a retry or when the
    /// proxy, not the picker, chose).
    public func sessionServed(_ session: String, by endpoint: EndpointAddress) {
        state.withLock { $0.sessions.set(session, endpoint) }
    }

    public func inFlight(_ e: EndpointAddress) -> Int { state.withLock { $0.inFlight[e] ?? 0 } }
    /// Requests routed and not yet finished, over every endpoint.
    public var inFlightTotal: Int { state.withLock { $0.inFlight.values.reduce(0, +) } }

    var prefixScorers: [PrefixCacheScorer] { profile.scorers.compactMap { $0.scorer as? PrefixCacheScorer } }

    /// Block hashes held by the prefix index (all prefix scorers).
    public var prefixIndexSize: Int { prefixScorers.reduce(0) { $0 + $1.indexSize } }
    /// Matched / looked-up prefix blocks since start.
    public var prefixHitRatio: Double { prefixScorers.first?.hitRatio ?? 0 }

    /// The endpoint left the pool: forget what the scorers learned about it.
    public func forget(endpoint: EndpointAddress) {
        for (scorer, _) in profile.scorers { scorer.forget(endpoint) }
        state.withLock { s in s.inFlight[endpoint] = nil }
    }
}

extension Scheduler.State {
    mutating func admit(_ requestID: String, _ routed: Scheduler.Routed) {
        inFlight[routed.endpoint, default: 0] += 1
        if let old = requests.updateValue(routed, forKey: requestID) { release(old.endpoint) }
        if let key = routed.session { sessions.set(key, routed.endpoint) }
    }

    mutating func release(_ endpoint: EndpointAddress) {
        let n = (inFlight[endpoint] ?? 1) - 1
        inFlight[endpoint] = n > 0 ? n : nil
    }

    mutating func move(_ requestID: String, to endpoint: EndpointAddress, scorers: [any EndpointScorer]) {
        guard var r = requests[requestID], r.endpoint != endpoint else { return }
        release(r.endpoint)
        inFlight[endpoint, default: 0] += 1
        if let learned = r.learned { for scorer in scorers { scorer.served(endpoint, insteadOf: r.endpoint, context: learned) } }
        r.endpoint = endpoint
        requests[requestID] = r
        if let key = r.session { sessions.set(key, endpoint) }
    }
}

/// session id → last endpoint, bounded (oldest sessions forgotten first).
struct SessionMemory {
    let capacity: Int
    private var map: [String: EndpointAddress] = [:]
    private var order: [String] = []
    private var head = 0

    init(capacity: Int) { self.capacity = capacity }

    func get(_ key: String) -> EndpointAddress? { map[key] }

    mutating func set(_ key: String, _ e: EndpointAddress) {
        if map.updateValue(e, forKey: key) == nil {
            order.append(key)
            if map.count > capacity {
                while head < order.count {
                    let old = order[head]
                    head += 1
                    if map.removeValue(forKey: old) != nil { break }
                }
                if head > capacity { order.removeFirst(head); head = 0 }
            }
        }
    }
}
