import KVRouteCore
import KVRouteDataLayer
import Logging
import Synchronization

/// The ordered endpoints a request may try, and why.
public struct RoutingDecision: Sendable {
    public var endpoints: [EndpointAddress]
    /// The Scheduler's decision: the profile that decided, every candidate's scores.
    public var result: SchedulingResult?
    /// Why the primary profile was bypassed, if it was (`picker-error: …`).
    public var fallbackReason: String?
    /// The routing configuration's name (`default`, `round-robin`…).
    public var policy: String
    /// The profile that decided (`default`, or `consistent-hash` for a headers-only session
    /// or after a picker error).
    public var profile: String
    /// How long the decision took; the core reads no clock, so whoever times it sets this.
    public var decisionSeconds: Double = 0

    /// A short label of the rule that decided, for logs and headers: the configuration's name
    /// when its primary profile decided, else the profile's.
    public var mode: String { profile == primaryProfile ? policy : profile }
    var primaryProfile: String
}

/// The one routing call of every kvroute front door: ``route(_:headersOnly:started:)`` decides
/// for a request over the engines' current snapshots and returns a ``RoutingLease`` that
/// carries the request's bookkeeping (the in-flight ledger, what a fallback that served
/// teaches the prefix index and the session memory, what the answer showed, the metrics)
/// until it is finished. The gateway and the ext_proc picker translate their protocols onto
/// it and nothing else. One ``Scheduler`` runs the configuration; its ledger holds all
/// router-side state.
public final class RequestRouter: Sendable {
    public struct Configuration: Sendable {
        /// The routing configuration: a built-in (``EndpointPickerConfig/builtIn(_:)``) or a file.
        public var pickerConfig: EndpointPickerConfig
        /// Ring size of the consistent-hash profile the mesh rules use (Istio's `minimumRingSize`).
        public var ringSize: Int
        /// Seed for tie-breaks and random choices (nil: random).
        public var seed: UInt64?
        /// Endpoints a decision names: the primary, then fallbacks.
        public var maxAttempts: Int

        public init(pickerConfig: EndpointPickerConfig = .kvrouteDefault, ringSize: Int = 4096, seed: UInt64? = nil, maxAttempts: Int = 3) {
            self.pickerConfig = pickerConfig
            self.ringSize = ringSize
            self.seed = seed
            self.maxAttempts = maxAttempts
        }
    }

    public let configuration: Configuration
    /// Runs the configuration; its ledger holds the in-flight counts and everything learned.
    public let scheduler: Scheduler
    public let metrics: PickerMetrics
    let snapshots: @Sendable () -> [EndpointSnapshot]
    /// The ledger's clock: seconds since the router started (``origin``).
    let clock: @Sendable (ContinuousClock.Instant) -> Double
    /// When the router started: the ledger's time 0.
    public let origin: ContinuousClock.Instant
    /// Numbers the ledger's keys: a client-chosen request id could collide with another's.
    private let leases = Atomic<UInt64>(0)

    /// A router over `snapshots` (the tracker's pool, or fixed ones in a simulation).
    public convenience init(configuration: Configuration, metrics: PickerMetrics, snapshots: @escaping @Sendable () -> [EndpointSnapshot]) throws {
        try self.init(configuration: configuration, scheduler: Self.scheduler(configuration), metrics: metrics, snapshots: snapshots)
    }

    init(configuration: Configuration, scheduler: Scheduler, metrics: PickerMetrics, snapshots: @escaping @Sendable () -> [EndpointSnapshot]) {
        self.configuration = configuration
        self.scheduler = scheduler
        self.metrics = metrics
        self.snapshots = snapshots
        let origin = ContinuousClock.now
        self.origin = origin
        clock = { RequestRouter.seconds($0 - origin) }
    }

    static func scheduler(_ c: Configuration) throws -> Scheduler {
        try Scheduler(config: c.pickerConfig, randomSeed: c.seed, ringSize: c.ringSize)
    }

    /// A router over an ``EndpointTracker`` of `endpoints`: endpoints that leave the pool are
    /// forgotten by the routing core.
    public static func tracking(
        endpoints: [String], intervals: EndpointTracker.Intervals, proxy: EndpointTracker.ProxySettings = .init(),
        configuration: Configuration, metrics: PickerMetrics, logger: Logger
    ) throws -> (router: RequestRouter, tracker: EndpointTracker) {
        let scheduler = try Self.scheduler(configuration)
        let tracker = try EndpointTracker(endpoints: endpoints, intervals: intervals, proxy: proxy, logger: logger) { left in
            for endpoint in left { scheduler.forget(endpoint: endpoint) }
        }
        let pool = tracker.pool
        let router = RequestRouter(configuration: configuration, scheduler: scheduler, metrics: metrics) { pool.snapshots() }
        return (router, tracker)
    }

    /// The instant `seconds` after ``origin``: a simulation in virtual time passes these as
    /// `started`, `firstByte(at:)` and `finished(…, at:)`, and the ledger sees its clock.
    public func instant(atSeconds seconds: Double) -> ContinuousClock.Instant {
        origin + .nanoseconds(Int64((seconds * 1e9).rounded()))
    }

    /// The configuration's name.
    public var policyName: String { configuration.pickerConfig.name }

    /// Decides for `request` and counts it in flight until the lease is finished (or dropped).
    ///
    /// `headersOnly`: the request's body is unknown (the picker answers from headers); the
    /// configuration's profile handler decides what that means (kvroute's: a session goes
    /// where the consistent hash puts it — the same engine for every request of the session,
    /// across picker restarts — unless it sends a session token). Errors are
    /// ``KVRouteError``s (map them with ``OpenAIErrorBody/status(for:)``); they are counted
    /// in the metrics.
    public func route(_ request: InferenceRequest, headersOnly: Bool = false, started: ContinuousClock.Instant = .now) throws -> RoutingLease {
        try route(request, snapshots: snapshots(), headersOnly: headersOnly, started: started)
    }

    /// The same over given snapshots (a simulation's engines, scraped in virtual time).
    public func route(
        _ request: InferenceRequest, snapshots: [EndpointSnapshot], headersOnly: Bool = false, started: ContinuousClock.Instant = .now
    ) throws -> RoutingLease {
        let decideStart = ContinuousClock.now
        var counted = request
        counted.requestID = "\(leases.add(1, ordering: .relaxed).newValue)/\(request.requestID)"
        var decision: RoutingDecision
        do {
            guard !snapshots.isEmpty else { throw KVRouteError(code: .noCandidates, message: "no endpoints are known") }
            // The ledger's time of the request is its start, the origin of its time to first byte.
            let r = try scheduler.schedule(counted, candidates: snapshots, now: clock(started), headersOnly: headersOnly)
            let endpoints = Array(([r.primary] + r.fallbacks).prefix(max(1, configuration.maxAttempts)))
            decision = RoutingDecision(
                endpoints: endpoints, result: r, fallbackReason: r.fallbackReason, policy: policyName, profile: r.profile,
                primaryProfile: scheduler.plugins.primary)
            decision.decisionSeconds = Self.seconds(ContinuousClock.now - decideStart)
        } catch let e as KVRouteError {
            refused(model: request.model, status: OpenAIErrorBody.status(for: e))
            throw e
        }
        metrics.decided(decision)
        return RoutingLease(request: request, ledgerRequest: counted, decision: decision, router: self, started: started)
    }

    /// A request refused before or while routing (a bad body, no endpoint), by status.
    public func refused(model: String, status: Int) {
        metrics.request(model: model, endpoint: nil, errorCode: String(status))
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}
