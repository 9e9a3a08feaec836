import KVRouteCore
import Synchronization

/// The live set of endpoints and what is known about each: membership from discovery,
/// load from metrics scrapes, liveness from probes and from the proxy's own failures.
/// Readers take consistent ``EndpointSnapshot``s for the decision core.
public final class EndpointPool: Sendable {
    public struct Configuration: Sendable {
        /// Consecutive failed scrapes or probes that make an endpoint unhealthy.
        public var failureThreshold: Int
        public init(failureThreshold: Int = 1) {
            self.failureThreshold = failureThreshold
        }
    }

    /// One endpoint as the pool tracks it.
    public struct Member: Sendable {
        public var address: EndpointAddress
        public var baseURL: String
        public var labels: [String: String]
        public var metrics: EngineMetricsSnapshot?
        public var lastScrape: ContinuousClock.Instant?
        public var scrapeFailures = 0
        public var probeFailures = 0
        public var lastError: String?
    }

    private let configuration: Configuration
    private let state = Mutex<[EndpointAddress: Member]>([:])
    private let order = Mutex<[EndpointAddress]>([])
    /// When a decision last read the pool (nil: never), so scrapes and probes can slow down
    /// while nothing is routed, and the loops waiting for the next read.
    private let reads = Mutex(Reads())

    struct Reads {
        var last: ContinuousClock.Instant?
        var count: UInt64 = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
    }

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
    }

    /// Replaces the membership: new endpoints join (unscraped), missing ones leave.
    /// Returns the addresses that left.
    @discardableResult
    public func setMembers(_ endpoints: [(address: EndpointAddress, baseURL: String, labels: [String: String])]) -> [EndpointAddress] {
        var left: [EndpointAddress] = []
        state.withLock { members in
            let wanted = Set(endpoints.map(\.address))
            for a in members.keys where !wanted.contains(a) {
                members[a] = nil
                left.append(a)
            }
            for e in endpoints {
                if members[e.address] == nil {
                    members[e.address] = Member(address: e.address, baseURL: e.baseURL, labels: e.labels)
                } else {
                    members[e.address]?.labels = e.labels
                }
            }
        }
        order.withLock { $0 = endpoints.map(\.address) }
        return left
    }

    public var members: [Member] {
        let o = order.withLock { $0 }
        return state.withLock { m in o.compactMap { m[$0] } }
    }

    public func member(_ a: EndpointAddress) -> Member? { state.withLock { $0[a] } }

    public func recordScrape(_ a: EndpointAddress, _ result: Result<EngineMetricsSnapshot, any Error>) {
        state.withLock { m in
            guard m[a] != nil else { return }
            switch result {
            case .success(let s):
                m[a]?.metrics = s
                m[a]?.lastScrape = .now
                m[a]?.scrapeFailures = 0
            case .failure(let e):
                m[a]?.scrapeFailures += 1
                m[a]?.lastError = "\(e)"
            }
        }
    }

    public func recordProbe(_ a: EndpointAddress, ok: Bool, error: String? = nil) {
        state.withLock { m in
            guard m[a] != nil else { return }
            if ok { m[a]?.probeFailures = 0 } else {
                m[a]?.probeFailures += 1
                m[a]?.lastError = error
            }
        }
    }

    /// The proxy could not reach the endpoint: treat it as a failed probe right away so the
    /// next decisions avoid it without waiting for the prober.
    public func recordConnectFailure(_ a: EndpointAddress, error: String) {
        recordProbe(a, ok: false, error: error)
        let threshold = configuration.failureThreshold
        state.withLock { m in
            guard var member = m[a] else { return }
            member.scrapeFailures = max(member.scrapeFailures, threshold)
            m[a] = member
        }
    }

    public func isHealthy(_ m: Member) -> Bool {
        m.lastScrape != nil && m.scrapeFailures < configuration.failureThreshold && m.probeFailures < configuration.failureThreshold
    }

    /// Snapshots of every member for the decision core, in discovery order.
    /// Wakes the loops waiting in ``nextRead(after:)`` without waiting for them.
    public func snapshots(now: ContinuousClock.Instant = .now) -> [EndpointSnapshot] {
        let woken = reads.withLock { r in
            r.last = now
            r.count &+= 1
            defer { r.waiters.removeAll() }
            return r.waiters
        }
        for c in woken.values { c.resume() }
        return members.map { m in
            let age = m.lastScrape.map { Self.seconds(now - $0) }
            return EndpointSnapshot(
                address: m.address, labels: m.labels,
                waitingRequests: Self.count(m.metrics?.waiting), runningRequests: Self.count(m.metrics?.running),
                kvCacheUsage: Self.fraction(m.metrics?.kvCacheUsage), inFlight: 0,
                healthy: isHealthy(m), metricsAge: age, maxNumSeqs: nil)
        }
    }

    /// True when no decision has read the pool for `quiet` (or ever).
    public func isIdle(for quiet: Duration, now: ContinuousClock.Instant = .now) -> Bool {
        reads.withLock { $0.last.map { now - $0 >= quiet } ?? true }
    }

    /// How many times decisions have read the pool.
    public var readCount: UInt64 { reads.withLock { $0.count } }

    /// Returns once a decision has read the pool after `count` reads (at once when one
    /// already has), or when the task is cancelled: a loop slowed down while idle waits
    /// here so that the first request after a pause wakes it.
    public func nextRead(after count: UInt64) async {
        let id = reads.withLock { r in
            defer { r.nextWaiter &+= 1 }
            return r.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = reads.withLock { r in
                    if r.count != count || Task.isCancelled { return true }
                    r.waiters[id] = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            reads.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }

    public var healthyCount: Int { members.filter(isHealthy).count }

    /// What an engine reported stays inside what the decision core can add and compare,
    /// however the snapshot was made.
    static func count(_ n: Int?) -> Int { min(max(n ?? 0, 0), EngineMetricsSnapshot.maxRequestCount) }
    static func fraction(_ x: Double?) -> Double {
        guard let x, x.isFinite else { return 0 }
        return min(max(x, 0), 1)
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}
