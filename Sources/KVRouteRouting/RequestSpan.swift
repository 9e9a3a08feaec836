import KVRouteCore
import Synchronization
import Tracing

/// Whether front doors make request spans: off unless the process bootstrapped a tracer
/// (kvroute's `--otlp-endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT`). Off, a request reads this
/// flag once and makes no span, attribute or allocation.
public enum RequestTracing {
    private static let on = Atomic<Bool>(false)
    public static var isEnabled: Bool { on.load(ordering: .relaxed) }
    /// Called once the tracer is bootstrapped.
    public static func enable() { on.store(true, ordering: .relaxed) }
}

/// One request's span through a front door (the gateway's HTTP request, the picker's ext_proc
/// stream), carrying the decision: the profile, the picked endpoint and its fallbacks, the
/// prefix blocks the picked endpoint holds of the prompt's, the fallback reason, the endpoint
/// that served and the outcome. Ends once (later ends do nothing); a span dropped unended
/// ends as `abandoned`. Empty when tracing is off.
public struct RequestSpan: Sendable {
    public enum FrontDoor: String, Sendable { case gateway, epp }

    let recorder: Recorder?

    /// No span: what a request gets when tracing is off.
    public static let none = RequestSpan(recorder: nil)

    /// Starts the span for a request, joining the caller's trace when its headers carry one
    /// (`traceparent`, as the bootstrapped propagators read it). `header` looks up a request
    /// header by its lower-cased name.
    public static func start(_ frontDoor: FrontDoor, path: String, header: @escaping @Sendable (String) -> String?) -> RequestSpan {
        guard RequestTracing.isEnabled else { return .none }
        var context = InstrumentationContext.topLevel
        InstrumentationSystem.instrument.extract(HeaderLookup(header), into: &context, using: HeaderLookup.Extract())
        let span = startSpan("kvroute route", context: context, ofKind: .server)
        span.attributes["kvroute.front_door"] = frontDoor.rawValue
        span.attributes["url.path"] = path
        return RequestSpan(recorder: Recorder(span))
    }

    /// The routing decision for the request.
    public func decided(_ lease: RoutingLease) {
        guard let span = recorder?.span else { return }
        let d = lease.decision
        span.attributes["kvroute.request_id"] = lease.request.requestID
        span.attributes["kvroute.model"] = lease.request.model
        span.attributes["kvroute.policy"] = d.policy
        span.attributes["kvroute.profile"] = d.profile
        span.attributes["kvroute.endpoint.picked"] = lease.primary.description
        span.attributes["kvroute.endpoint.fallbacks"] = d.endpoints.dropFirst().map(\.description)
        span.attributes["kvroute.decision_us"] = Int(d.decisionSeconds * 1_000_000)
        if let e = d.result?.explanation {
            span.attributes["kvroute.profile"] = e.profile
            span.attributes["kvroute.prefix_blocks.matched"] = e.matchedPrefixBlocks
            span.attributes["kvroute.prefix_blocks.total"] = e.totalPrefixBlocks
        }
        if let reason = d.fallbackReason { span.attributes["kvroute.fallback_reason"] = reason }
    }

    /// The request was refused before an endpoint was chosen (a bad body, no endpoint).
    public func refused(status: Int, reason: String) {
        recorder?.end(outcome: "refused", servedBy: nil, status: status, error: reason)
    }

    /// The request ended: where it was served and how (as ``RoutingLease/finished(servedBy:outcome:usage:)`` is told).
    public func finished(servedBy: EndpointAddress?, outcome: RoutingOutcome) {
        guard let recorder else { return }
        switch outcome {
        case .answered(let status):
            recorder.end(outcome: "answered", servedBy: servedBy, status: status, error: status.flatMap { $0 >= 500 ? "status \($0)" : nil })
        case .failed(let code):
            recorder.end(outcome: "failed", servedBy: servedBy, status: code, error: "failed with \(code)")
        case .unobserved:
            recorder.end(outcome: "unobserved", servedBy: servedBy, status: nil, error: nil)
        case .abandoned:
            recorder.end(outcome: "abandoned", servedBy: servedBy, status: nil, error: nil)
        }
    }

    /// Holds the span so that it ends exactly once.
    final class Recorder: Sendable {
        let span: any Span
        private let ended = Atomic<Bool>(false)

        init(_ span: any Span) { self.span = span }

        func end(outcome: String, servedBy: EndpointAddress?, status: Int?, error: String?) {
            guard !ended.exchange(true, ordering: .acquiringAndReleasing) else { return }
            span.attributes["kvroute.outcome"] = outcome
            if let servedBy { span.attributes["kvroute.endpoint.served"] = servedBy.description }
            if let status { span.attributes["http.response.status_code"] = status }
            if let error { span.setStatus(SpanStatus(code: .error, message: error)) }
            span.end()
        }

        deinit { end(outcome: "abandoned", servedBy: nil, status: nil, error: nil) }
    }
}

/// A request's headers as a trace-context carrier.
struct HeaderLookup: Sendable {
    let header: @Sendable (String) -> String?
    init(_ header: @escaping @Sendable (String) -> String?) { self.header = header }

    struct Extract: Extractor {
        func extract(key: String, from carrier: HeaderLookup) -> String? { carrier.header(key.lowercased()) }
    }
}

extension RequestSpan {
    /// Whether this request has a span (tracing is on).
    public var isRecording: Bool { recorder != nil }
}
