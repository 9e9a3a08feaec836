import KVRouteCore
import Synchronization

/// Why one sample of an engine's `/metrics` page was not used. A fixed set, so it can label a
/// metric.
public enum EngineSampleRejection: String, Sendable, Hashable, CaseIterable {
    /// The value is `NaN`.
    case notANumber = "nan"
    /// The value is `+Inf` or `-Inf`.
    case infinite
    /// A count, counter or KV usage below zero.
    case negative
    /// Larger than anything an engine can report (a queue of billions, usage above 1, a
    /// counter at or past 2^63).
    case outOfRange = "out_of_range"
    /// A label the router reads (`model_name`, `block_size`, `num_gpu_blocks`) is malformed,
    /// too long, or one model name too many.
    case badLabel = "bad_label"
}

/// Rejected engine samples over the process's life, by reason, and which (endpoint, reason)
/// pairs were already logged, so a misbehaving engine is reported once rather than on every
/// scrape.
public final class EngineSampleRejections: Sendable {
    private struct State {
        var totals: [EngineSampleRejection: Int] = [:]
        var logged: Set<Logged> = []
    }

    private struct Logged: Hashable {
        var endpoint: EndpointAddress
        var reason: EngineSampleRejection
    }

    private let state = Mutex(State())

    public init() {}

    /// Adds one scrape's rejections; returns the reasons not yet reported for this endpoint.
    public func record(_ counts: [EngineSampleRejection: Int], from endpoint: EndpointAddress) -> [EngineSampleRejection] {
        guard !counts.isEmpty else { return [] }
        return state.withLock { s in
            var fresh: [EngineSampleRejection] = []
            for (reason, n) in counts where n > 0 {
                s.totals[reason, default: 0] &+= n
                if s.logged.insert(Logged(endpoint: endpoint, reason: reason)).inserted { fresh.append(reason) }
            }
            return fresh.sorted { $0.rawValue < $1.rawValue }
        }
    }

    /// Forgets what was logged for endpoints that left, so the set stays as small as the pool.
    public func retain(endpoints: Set<EndpointAddress>) {
        state.withLock { s in
            guard !s.logged.isEmpty else { return }
            s.logged = s.logged.filter { endpoints.contains($0.endpoint) }
        }
    }

    /// Samples rejected so far, by reason (every reason present, zero included).
    public var totals: [EngineSampleRejection: Int] {
        state.withLock { s in
            Dictionary(uniqueKeysWithValues: EngineSampleRejection.allCases.map { ($0, s.totals[$0] ?? 0) })
        }
    }
}
