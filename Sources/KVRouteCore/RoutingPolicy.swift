import Synchronization

/// How requests are routed.
public enum RoutingMode: String, Sendable, CaseIterable {
    /// The KV-cache-aware picker (an EndpointPickerConfig), falling back to
    /// `consistentHash` when it fails.
    case picker
    /// The mesh fallback: consistent hashing on the session id over a ring like
    /// Istio's `consistentHash` (`minimumRingSize` 4096); random without a session.
    case consistentHash = "consistent-hash"
    /// Round-robin over healthy endpoints.
    case roundRobin = "round-robin"
    /// Uniformly random over healthy endpoints.
    case random
}

/// The ordered endpoints a request may try, and why.
public struct RoutingDecision: Sendable {
    public var endpoints: [EndpointAddress]
    /// Set when the picker chose; nil for the mesh-style modes.
    public var result: SchedulingResult?
    /// Why the picker was bypassed, if it was (`picker-error`, `no-healthy`…).
    public var fallbackReason: String?
    public var mode: RoutingMode
    /// How long the decision took; the core reads no clock, so whoever times it sets this.
    public var decisionSeconds: Double = 0
}

/// Chooses endpoints for a request in the configured mode. The picker path runs the
/// decision core; if it throws anything but "no candidates", the request falls back to the
/// consistent-hash ring, as Istio's DestinationRule does when the picker is down.
public final class RoutingPolicy: Sendable {
    public let mode: RoutingMode
    public let scheduler: Scheduler?
    let ringSize: Int
    private let state: Mutex<State>

    struct State {
        var ring: ConsistentHashRing?
        var ringMembers: [EndpointAddress] = []
        var roundRobin = 0
        var rng: SystemOrSeeded
    }

    public init(mode: RoutingMode, pickerConfig: EndpointPickerConfig, ringSize: Int, seed: UInt64?) throws {
        self.mode = mode
        self.scheduler = mode == .picker ? try Scheduler(config: pickerConfig, randomSeed: seed) : nil
        self.ringSize = ringSize
        self.state = Mutex(State(rng: SystemOrSeeded(seed: seed)))
    }

    /// Decides for one request over the current snapshots.
    public func decide(_ request: InferenceRequest, snapshots: [EndpointSnapshot], maxAttempts: Int) throws -> RoutingDecision {
        guard !snapshots.isEmpty else {
            throw KVRouteError(code: .noCandidates, message: "no endpoints are known")
        }
        if let scheduler {
            do {
                let r = try scheduler.schedule(request, candidates: snapshots)
                let ordered = Array(([r.primary] + r.fallbacks).prefix(max(1, maxAttempts)))
                return RoutingDecision(endpoints: ordered, result: r, fallbackReason: nil, mode: .picker)
            } catch let e as KVRouteError where e.code == .noCandidates {
                throw e
            } catch {
                var d = meshDecision(.consistentHash, request, try Self.allowed(request, snapshots), maxAttempts)
                d.fallbackReason = "picker-error: \(error)"
                return d
            }
        }
        return meshDecision(mode, request, try Self.allowed(request, snapshots), maxAttempts)
    }

    /// The snapshots the request's subset hint allows (the scheduler applies the same rule on
    /// the picker path).
    static func allowed(_ request: InferenceRequest, _ snapshots: [EndpointSnapshot]) throws -> [EndpointSnapshot] {
        guard let hint = request.subsetHint else { return snapshots }
        let allowed = Set(hint)
        let kept = snapshots.filter { allowed.contains($0.address) }
        guard !kept.isEmpty else {
            throw KVRouteError(code: .noCandidates, message: hint.isEmpty ? "the subset hint allows no endpoint" : "no endpoint matches the subset hint \(hint.map(\.description))")
        }
        return kept
    }

    /// The picker path's bookkeeping when a request ends; `servedBy` is the endpoint that
    /// answered (a fallback after a retry), nil when none did.
    public func finished(_ request: InferenceRequest, servedBy: EndpointAddress?) {
        scheduler?.requestFinished(requestID: request.requestID, servedBy: servedBy)
    }

    /// Another endpoint than the decision's primary serves the request.
    public func served(_ request: InferenceRequest, by endpoint: EndpointAddress) {
        scheduler?.requestServed(requestID: request.requestID, by: endpoint)
    }

    private func meshDecision(_ mode: RoutingMode, _ request: InferenceRequest, _ snapshots: [EndpointSnapshot], _ maxAttempts: Int) -> RoutingDecision {
        let healthy = snapshots.filter(\.healthy).map(\.address)
        let pool = healthy.isEmpty ? snapshots.map(\.address) : healthy
        let attempts = max(1, min(maxAttempts, pool.count))
        let endpoints: [EndpointAddress] = state.withLock { s in
            switch mode {
            case .consistentHash, .picker:
                guard let key = request.sessionKey else {
                    return Array(pool.shuffled(using: &s.rng).prefix(attempts))
                }
                if s.ring == nil || s.ringMembers != pool {
                    s.ring = ConsistentHashRing(endpoints: pool, minimumRingSize: ringSize)
                    s.ringMembers = pool
                }
                return s.ring!.pick(key: key, count: attempts)
            case .roundRobin:
                let start = s.roundRobin % pool.count
                s.roundRobin &+= 1
                return (0..<attempts).map { pool[(start + $0) % pool.count] }
            case .random:
                return Array(pool.shuffled(using: &s.rng).prefix(attempts))
            }
        }
        return RoutingDecision(endpoints: endpoints, result: nil, fallbackReason: nil, mode: mode)
    }
}

/// A generator that is seeded when a seed is given and system-random otherwise.
struct SystemOrSeeded: RandomNumberGenerator, Sendable {
    var state: UInt64
    let seeded: Bool
    init(seed: UInt64?) {
        seeded = seed != nil
        state = seed ?? 0
    }
    mutating func next() -> UInt64 {
        guard seeded else {
            var g = SystemRandomNumberGenerator()
            return g.next()
        }
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

