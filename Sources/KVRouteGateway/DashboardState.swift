import KVRouteCore
import KVRouteStats
import Synchronization

/// What the live dashboard shows beyond the engines' own metrics: requests routed per
/// endpoint over time, per-session stickiness and recent decision latency. Bounded: a
/// two-minute window of one-second buckets, the last 2,048 sessions, the last 1,024
/// decisions.
public final class DashboardState: Sendable {
    struct State {
        var routedTotal: [EndpointAddress: Int] = [:]
        /// Second → endpoint → requests; only the last `window` seconds are kept.
        var buckets: [Int: [EndpointAddress: Int]] = [:]
        var sessions: [String: [EndpointAddress: Int]] = [:]
        var sessionOrder: [String] = []
        var decisions: [Double] = []
        var decisionIndex = 0
    }

    public static let window = 120
    static let maxSessions = 2_048
    static let maxDecisions = 1_024
    private let state = Mutex(State())
    private let start = ContinuousClock.now

    public init() {}

    func second(_ now: ContinuousClock.Instant = .now) -> Int { Int((now - start).components.seconds) }

    public func recordRouted(_ endpoint: EndpointAddress, session: String?, decisionSeconds: Double) {
        let s = second()
        state.withLock { st in
            st.routedTotal[endpoint, default: 0] += 1
            st.buckets[s, default: [:]][endpoint, default: 0] += 1
            if st.buckets.count > Self.window + 5 {
                for k in st.buckets.keys where k < s - Self.window { st.buckets[k] = nil }
            }
            if let session {
                if st.sessions[session] == nil {
                    st.sessionOrder.append(session)
                    if st.sessionOrder.count > Self.maxSessions {
                        let old = st.sessionOrder.removeFirst()
                        st.sessions[old] = nil
                    }
                }
                st.sessions[session, default: [:]][endpoint, default: 0] += 1
            }
            if st.decisions.count < Self.maxDecisions {
                st.decisions.append(decisionSeconds)
            } else {
                st.decisions[st.decisionIndex % Self.maxDecisions] = decisionSeconds
            }
            st.decisionIndex += 1
        }
    }

    public struct Summary: Sendable {
        public var routedTotal: [EndpointAddress: Int]
        /// Oldest first: requests per endpoint in each of the last `window` seconds.
        public var series: [[EndpointAddress: Int]]
        /// Mean over sessions with at least two requests of the top engine's share.
        public var stickiness: Double?
        public var sessionsSeen: Int
        public var decisionP50: Double?
        public var decisionP99: Double?
    }

    public func summary() -> Summary {
        let now = second()
        return state.withLock { st in
            let series = ((now - Self.window + 1)...now).map { st.buckets[$0] ?? [:] }
            var shares: [Double] = []
            for counts in st.sessions.values {
                let total = counts.values.reduce(0, +)
                if total >= 2 { shares.append(Double(counts.values.max() ?? 0) / Double(total)) }
            }
            // In microseconds: Percentiles keeps 1/1000 of a unit.
            let decisions = Percentiles(st.decisions.lazy.map { $0 * 1e6 })
            func pct(_ p: Double) -> Double? { decisions.value(at: p).map { $0 / 1e6 } }
            return Summary(
                routedTotal: st.routedTotal, series: series,
                stickiness: shares.isEmpty ? nil : shares.reduce(0, +) / Double(shares.count),
                sessionsSeen: st.sessions.count, decisionP50: pct(0.5), decisionP99: pct(0.99))
        }
    }
}
