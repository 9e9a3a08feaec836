import KVRouteCore
import Synchronization

/// How a routed request ended, for the metrics.
public enum RoutingOutcome: Sendable, Equatable {
    /// The engine answered with this HTTP status (nil: not known).
    case answered(status: Int?)
    /// The request failed with this code: an HTTP status (502, 504), or 499 when the client left.
    case failed(code: Int)
    /// The answer passed this front door unseen (Envoy does not send the response side).
    case unobserved
    /// The lease was dropped unfinished: bookkeeping only, no request counted.
    case abandoned
}

extension RoutingOutcome {
    var result: RequestOutcome.Result {
        switch self {
        case .answered(let status): .answered(status: status)
        case .failed(let code): .failed(code: code)
        case .unobserved: .unobserved
        case .abandoned: .abandoned
        }
    }
}

/// One routed request, from ``RequestRouter/route(_:headersOnly:started:)`` to its end: the
/// decision, the endpoint it is counted on, and the bookkeeping that must end exactly once.
/// ``finished(servedBy:outcome:usage:)`` ends it (later calls do nothing); a lease dropped
/// unfinished ends itself as ``RoutingOutcome/abandoned``, so the in-flight count never leaks.
public final class RoutingLease: Sendable {
    /// The request as the front door described it (its own request id).
    public let request: InferenceRequest
    /// The request as the routing core counts it (a request id of the router's).
    let ledgerRequest: InferenceRequest
    public let decision: RoutingDecision
    let router: RequestRouter
    var metrics: PickerMetrics { router.metrics }
    public let started: ContinuousClock.Instant
    private let state: Mutex<State>

    struct State {
        var endpoint: EndpointAddress
        var firstByte: ContinuousClock.Instant?
        var done = false
    }

    init(request: InferenceRequest, ledgerRequest: InferenceRequest, decision: RoutingDecision, router: RequestRouter, started: ContinuousClock.Instant) {
        self.request = request
        self.ledgerRequest = ledgerRequest
        self.decision = decision
        self.router = router
        self.started = started
        state = Mutex(State(endpoint: decision.endpoints[0]))
    }

    /// The endpoints to try in order: the primary, then fallbacks.
    public var endpoints: [EndpointAddress] { decision.endpoints }
    public var primary: EndpointAddress { decision.endpoints[0] }
    /// The endpoint the request is counted on now: the primary, or the one that took over.
    public var endpoint: EndpointAddress { state.withLock { $0.endpoint } }
    public var isFinished: Bool { state.withLock { $0.done } }

    /// The `x-session-token` value for the answer: the serving endpoint, so the client's next
    /// request can name it.
    public var sessionToken: String { SessionAffinityScorer.token(for: endpoint) }

    /// Another endpoint took the request (a retry to a fallback): the in-flight count moves
    /// there now, and the prefix index and session memory learn it.
    public func serving(_ endpoint: EndpointAddress) {
        let moved = state.withLock { s -> Bool in
            guard !s.done, s.endpoint != endpoint else { return false }
            s.endpoint = endpoint
            return true
        }
        if moved { router.scheduler.requestServed(requestID: ledgerRequest.requestID, by: endpoint) }
    }

    /// The answer's first byte arrived (only the first call counts): the time from `started`
    /// reaches the ledger with ``finished(servedBy:outcome:usage:)`` as its time to first byte,
    /// for plugins that learn latency.
    public func firstByte(at instant: ContinuousClock.Instant = .now) {
        state.withLock { s in
            if !s.done && s.firstByte == nil { s.firstByte = instant }
        }
    }

    /// Ends the request: the in-flight count goes down (on the endpoint that served, which the
    /// routing core learns when it is not the primary), the ledger learns what was observed
    /// (the outcome, the time to first byte, whether the answer was `streamed`, the usage),
    /// and the request is counted by `outcome`. Only the first call counts. `at`: when it
    /// ended (a simulation passes its virtual time, ``RequestRouter/instant(atSeconds:)``).
    public func finished(
        servedBy: EndpointAddress?, outcome: RoutingOutcome, usage: ResponseUsage? = nil, streamed: Bool? = nil,
        at now: ContinuousClock.Instant = .now
    ) {
        guard let firstByte = state.withLock({ s -> ContinuousClock.Instant?? in
            guard !s.done else { return nil }
            s.done = true
            if let servedBy { s.endpoint = servedBy }
            return .some(s.firstByte)
        }) else { return }
        router.scheduler.requestFinished(requestID: ledgerRequest.requestID, outcome: RequestOutcome(
            servedBy: servedBy, result: outcome.result, finishedAt: router.clock(now),
            timeToFirstByte: firstByte.map { RequestRouter.seconds($0 - started) }, streamed: streamed,
            promptTokens: usage?.promptTokens, cachedTokens: usage?.cachedTokens, completionTokens: usage?.completionTokens))
        let model = request.model
        switch outcome {
        case .answered(let status):
            metrics.request(model: model, endpoint: servedBy, errorCode: status.flatMap { $0 >= 400 ? String($0) : nil })
            metrics.requestDuration(model: model, seconds: RequestRouter.seconds(now - started))
            if let usage { metrics.usage(model: model, usage) }
        case .failed(let code):
            metrics.request(model: model, endpoint: servedBy, errorCode: String(code))
            metrics.requestDuration(model: model, seconds: RequestRouter.seconds(now - started))
        case .unobserved:
            metrics.request(model: model, endpoint: servedBy, errorCode: nil)
        case .abandoned:
            break
        }
    }

    deinit { finished(servedBy: nil, outcome: .abandoned) }
}
