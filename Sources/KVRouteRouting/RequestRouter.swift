import KVRouteCore
import KVRouteDataLayer
import Logging
import Synchronization

/// The one routing call of every kvroute front door: ``route(_:headersOnly:started:)`` decides
/// for a request over the engines' current snapshots and returns a ``RoutingLease`` that
/// carries the request's bookkeeping (the in-flight ledger, what a fallback that served
/// teaches the prefix index and the session memory, the metrics) until it is finished. The
/// gateway and the ext_proc picker translate their protocols onto it and nothing else.
public final class RequestRouter: Sendable {
    public struct Configuration: Sendable {
        public var mode: RoutingMode
        public var pickerConfig: EndpointPickerConfig
        /// Ring size of the consistent hash (Istio's `minimumRingSize`).
        public var ringSize: Int
        /// Seed for tie-breaks and random choices (nil: random).
        public var seed: UInt64?
        /// Endpoints a decision names: the primary, then fallbacks.
        public var maxAttempts: Int

        public init(mode: RoutingMode = .picker, pickerConfig: EndpointPickerConfig = .kvrouteDefault, ringSize: Int = 4096, seed: UInt64? = nil, maxAttempts: Int = 3) {
            self.mode = mode
            self.pickerConfig = pickerConfig
            self.ringSize = ringSize
            self.seed = seed
            self.maxAttempts = maxAttempts
        }
    }

    public let configuration: Configuration
    /// The configured mode's policy; its scheduler (picker mode) holds the in-flight ledger.
    public let policy: RoutingPolicy
    /// Consistent hash on the session id, for sessions known from headers alone.
    let ring: RoutingPolicy
    public let metrics: PickerMetrics
    let snapshots: @Sendable () -> [EndpointSnapshot]
    /// Numbers the ledger's keys: a client-chosen request id could collide with another's.
    private let leases = Atomic<UInt64>(0)

    /// A router over `snapshots` (the tracker's pool, or fixed ones in a simulation).
    public convenience init(configuration: Configuration, metrics: PickerMetrics, snapshots: @escaping @Sendable () -> [EndpointSnapshot]) throws {
        try self.init(configuration: configuration, policies: Self.policies(configuration), metrics: metrics, snapshots: snapshots)
    }

    init(configuration: Configuration, policies: (RoutingPolicy, RoutingPolicy), metrics: PickerMetrics, snapshots: @escaping @Sendable () -> [EndpointSnapshot]) {
        self.configuration = configuration
        (policy, ring) = policies
        self.metrics = metrics
        self.snapshots = snapshots
    }

    static func policies(_ c: Configuration) throws -> (RoutingPolicy, RoutingPolicy) {
        let policy = try RoutingPolicy(mode: c.mode, pickerConfig: c.pickerConfig, ringSize: c.ringSize, seed: c.seed)
        let ring = c.mode == .consistentHash ? policy : try RoutingPolicy(mode: .consistentHash, pickerConfig: c.pickerConfig, ringSize: c.ringSize, seed: c.seed)
        return (policy, ring)
    }

    /// A router over an ``EndpointTracker`` of `endpoints`: endpoints that leave the pool are
    /// forgotten by the routing core.
    public static func tracking(
        endpoints: [String], intervals: EndpointTracker.Intervals, proxy: EndpointTracker.ProxySettings = .init(),
        configuration: Configuration, metrics: PickerMetrics, logger: Logger
    ) throws -> (router: RequestRouter, tracker: EndpointTracker) {
        let policies = try Self.policies(configuration)
        let scheduler = policies.0.scheduler
        let tracker = try EndpointTracker(endpoints: endpoints, intervals: intervals, proxy: proxy, logger: logger) { left in
            for endpoint in left { scheduler?.forget(endpoint: endpoint) }
        }
        let pool = tracker.pool
        let router = RequestRouter(configuration: configuration, policies: policies, metrics: metrics) { pool.snapshots() }
        return (router, tracker)
    }

    /// The scheduler behind picker mode (nil in the mesh modes).
    public var scheduler: Scheduler? { policy.scheduler }

    /// Decides for `request` and counts it in flight until the lease is finished (or dropped).
    ///
    /// `headersOnly`: the request's body is unknown (the picker answers from headers). A
    /// session then goes where the consistent hash puts it — the same engine for every
    /// request of the session, across picker restarts — unless it sends a session token; it
    /// is still counted in the picker's in-flight ledger. Errors are ``KVRouteError``s (map
    /// them with ``OpenAIErrorBody/status(for:)``); they are counted in the metrics.
    public func route(_ request: InferenceRequest, headersOnly: Bool = false, started: ContinuousClock.Instant = .now) throws -> RoutingLease {
        try route(request, snapshots: snapshots(), headersOnly: headersOnly, started: started)
    }

    /// The same over given snapshots (a simulation's engines, scraped in virtual time).
    public func route(
        _ request: InferenceRequest, snapshots: [EndpointSnapshot], headersOnly: Bool = false, started: ContinuousClock.Instant = .now
    ) throws -> RoutingLease {
        let decideStart = ContinuousClock.now
        let byRing = headersOnly && request.sessionKey != nil && request.headers[SessionKey.tokenHeader] == nil && configuration.mode == .picker
        let chosen = byRing ? ring : policy
        var counted = request
        counted.requestID = "\(leases.add(1, ordering: .relaxed).newValue)/\(request.requestID)"
        var decision: RoutingDecision
        do {
            decision = try chosen.decide(counted, snapshots: snapshots, maxAttempts: configuration.maxAttempts)
            guard let primary = decision.endpoints.first else { throw KVRouteError(code: .noCandidates, message: "no endpoint can take the request") }
            decision.decisionSeconds = Self.seconds(ContinuousClock.now - decideStart)
            if byRing { policy.scheduler?.requestRouted(requestID: counted.requestID, to: primary, session: counted.sessionKey) }
        } catch let e as KVRouteError {
            refused(model: request.model, status: OpenAIErrorBody.status(for: e))
            throw e
        }
        metrics.decided(decision)
        // The ledger's entry lives in `policy`'s scheduler whichever policy decided.
        return RoutingLease(request: request, ledgerRequest: counted, decision: decision, policy: policy, metrics: metrics, started: started)
    }

    /// A request refused before or while routing (a bad body, no endpoint), by status.
    public func refused(model: String, status: Int) {
        metrics.request(model: model, endpoint: nil, errorCode: String(status))
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}
