import Foundation
import GRPCCore
import HTTPTypes
import KVRouteCore
import KVRouteDataLayer
import KVRouteProto
import KVRouteRouting
import Logging

/// The Envoy external processor: for each HTTP request, routes with the ``RequestRouter`` and
/// tells Envoy through `x-gateway-destination-endpoint` and `envoy.lb` metadata. The stream's
/// phases are ``ExtProcStream``; this type only reads, routes and writes. The stream holds
/// the request's ``RoutingLease`` until the response ends (or the stream does), and learns
/// the endpoint that served from the response side when Envoy reports it.
public final class ExtProcService: Envoy_Service_ExtProc_V3_ExternalProcessor.SimpleServiceProtocol, Sendable {
    public struct Options: Sendable {
        /// Endpoints a decision names: the primary, then fallbacks.
        public var maxAttempts = 3
        /// Also list the fallbacks in the header (Envoy's ORIGINAL_DST cluster takes one
        /// `ip:port`, so by default the header names the primary and only the metadata
        /// carries the fallbacks).
        public var fallbacksInHeader = false
        public init() {}
    }

    let router: RequestRouter
    let metrics: EPPMetrics
    let logger: Logger
    let options: Options

    init(router: RequestRouter, metrics: EPPMetrics, logger: Logger, options: Options) {
        self.router = router
        self.metrics = metrics
        self.logger = logger
        self.options = options
    }

    public func process(
        request: RPCAsyncSequence<Envoy_Service_ExtProc_V3_ProcessingRequest, any Error>,
        response: RPCWriter<Envoy_Service_ExtProc_V3_ProcessingResponse>,
        context: ServerContext
    ) async throws {
        let opened = ContinuousClock.now
        var stream = ExtProcStream()
        var subsetHint: [EndpointAddress]?
        var lease: RoutingLease?
        var span = RequestSpan.none
        // Whether the answer streams (an event stream): its first body chunk is its first
        // token; a whole answer's headers come with its last.
        var streamed: Bool?
        // A stream that ends before its response did (Envoy skips the response side, or the
        // request failed) still ends the lease, on the endpoint it is counted on.
        defer {
            if let lease {
                lease.finished(servedBy: lease.endpoint, outcome: .unobserved)
                span.finished(servedBy: lease.endpoint, outcome: .unobserved)
            }
        }
        for try await message in request {
            if let lease, let served = ExtProcMessages.servedEndpoint(message), lease.endpoints.contains(served) {
                lease.serving(served)
            }
            let action: ExtProcStream.Action
            switch message.request {
            case .requestHeaders(let h)?:
                let mode = ExtProcMessages.bodyMode(message.protocolConfig.requestBodyMode)
                metrics.streamOpened(mode: h.endOfStream ? .none : mode)
                subsetHint = ExtProcMessages.subsetHint(message.metadataContext)
                let pairs = ExtProcMessages.headers(h.headers)
                if RequestTracing.isEnabled {
                    let headers = Dictionary(pairs.map { ($0.0.lowercased(), $0.1) }, uniquingKeysWith: { a, _ in a })
                    span = RequestSpan.start(.epp, path: headers[":path"] ?? "/") { headers[$0] }
                }
                action = stream.requestHeaders(
                    pairs, session: SessionKey.normalize(pairs: pairs), endOfStream: h.endOfStream,
                    requestMode: mode, responseMode: ExtProcMessages.bodyMode(message.protocolConfig.responseBodyMode))
            case .requestBody(let b)?:
                action = stream.requestBody(Array(b.body), endOfStream: b.endOfStream)
            case .requestTrailers?:
                action = stream.requestTrailers()
            case .responseHeaders(let h)?:
                streamed = Self.isEventStream(ExtProcMessages.headers(h.headers))
                if streamed == false { lease?.firstByte() }
                action = stream.responseHeaders(endOfStream: h.endOfStream)
            case .responseBody(let b)?:
                if streamed == true, !b.body.isEmpty { lease?.firstByte() }
                action = stream.responseBody(Array(b.body), endOfStream: b.endOfStream)
            case .responseTrailers?:
                action = stream.responseTrailers()
            case nil:
                continue
            }
            if let l = try await perform(action, lease: lease, subsetHint: subsetHint, mode: stream.requestMode, opened: opened, span: span, response) {
                lease = l
            }
            if stream.responseComplete, let lease {
                lease.finished(servedBy: lease.endpoint, outcome: .answered(status: nil), usage: ResponseUsage.parse(tail: stream.responseTail), streamed: streamed)
                span.finished(servedBy: lease.endpoint, outcome: .answered(status: nil))
            }
        }
    }

    /// Carries out one action; returns the lease when it routed the request.
    func perform(
        _ action: ExtProcStream.Action, lease: RoutingLease?, subsetHint: [EndpointAddress]?, mode: ExtProcStream.BodyMode,
        opened: ContinuousClock.Instant, span: RequestSpan = .none, _ response: RPCWriter<ProcessingResponse>
    ) async throws -> RoutingLease? {
        var r = ProcessingResponse()
        switch action {
        case .hold:
            return nil
        case .continueRequestHeaders(let remove):
            r.requestHeaders.response.headerMutation.removeHeaders = remove
        case .continueRequestBody:
            r.requestBody.response = CommonResponse()
        case .continueRequestTrailers:
            r.requestTrailers = Envoy_Service_ExtProc_V3_TrailersResponse()
        case .continueResponseHeaders:
            var common = CommonResponse()
            if let lease {
                common.headerMutation.setHeaders = [ExtProcMessages.option(SessionKey.tokenHeader, lease.sessionToken)]
            }
            r.responseHeaders.response = common
        case .continueResponseBody(let echo, let endOfStream):
            if let echo {
                var m = Envoy_Service_ExtProc_V3_StreamedBodyResponse()
                m.body = Data(echo)
                m.endOfStream = endOfStream
                r.responseBody.response.bodyMutation.streamedResponse = m
            } else {
                r.responseBody.response = CommonResponse()
            }
        case .continueResponseTrailers:
            r.responseTrailers = Envoy_Service_ExtProc_V3_TrailersResponse()
        case .reject(let status, let message):
            router.refused(model: "", status: status)
            span.refused(status: status, reason: message)
            r = ExtProcMessages.immediate(status: status, message: message)
        case .protocolError(let why):
            throw RPCError(code: .failedPrecondition, message: why)
        case .decide(let info, let body, let phase):
            return try await decide(info, body: body, phase: phase, subsetHint: subsetHint, mode: mode, opened: opened, span: span, response)
        }
        try await response.write(r)
        return nil
    }

    func decide(
        _ info: ExtProcStream.RequestInfo, body: [UInt8], phase: ExtProcStream.Phase, subsetHint: [EndpointAddress]?,
        mode: ExtProcStream.BodyMode, opened: ContinuousClock.Instant, span: RequestSpan = .none, _ response: RPCWriter<ProcessingResponse>
    ) async throws -> RoutingLease? {
        let started = ContinuousClock.now
        let lease: RoutingLease
        do {
            let request: InferenceRequest
            do {
                request = try Self.inferenceRequest(info, body: body, phase: phase, subsetHint: subsetHint)
            } catch let e as KVRouteError {
                router.refused(model: "", status: OpenAIErrorBody.status(for: e))
                throw e
            }
            // From headers alone a session goes where the consistent hash puts it (the router's rule).
            lease = try router.route(request, headersOnly: phase == .headers, started: opened)
        } catch let e as KVRouteError {
            let status = OpenAIErrorBody.status(for: e)
            logger.debug("rejected", metadata: ["status": "\(status)", "error": "\(e)", "path": "\(info.path)"])
            span.refused(status: status, reason: e.message)
            try await response.write(ExtProcMessages.immediate(status: status, message: e.message))
            return nil
        }
        span.decided(lease)
        let decision = lease.decision
        let request = lease.request
        let primary = decision.endpoints[0]
        let all = decision.endpoints.map(\.description).joined(separator: ",")
        let header = options.fallbacksInHeader ? all : primary.description
        var r = ProcessingResponse()
        r.dynamicMetadata = ExtProcMessages.metadata(destination: all)
        switch phase {
        case .headers:
            r.requestHeaders.response = ExtProcMessages.routing(destination: header, remove: info.forgedHeaders)
            try await response.write(r)
        case .body:
            r.requestBody.response = ExtProcMessages.routing(destination: header, remove: info.forgedHeaders)
            try await response.write(r)
        case .headersThenBody(let trailers):
            // Envoy forwards a full-duplex body chunked unless the headers give its length.
            r.requestHeaders.response = ExtProcMessages.routing(
                destination: header, remove: info.forgedHeaders + ["transfer-encoding"], extra: [("content-length", String(body.count))])
            try await response.write(r)
            var b = ProcessingResponse()
            var streamed = Envoy_Service_ExtProc_V3_StreamedBodyResponse()
            streamed.body = Data(body)
            streamed.endOfStream = !trailers
            b.requestBody.response.bodyMutation.streamedResponse = streamed
            try await response.write(b)
            if trailers {
                var t = ProcessingResponse()
                t.requestTrailers = Envoy_Service_ExtProc_V3_TrailersResponse()
                try await response.write(t)
            }
        }
        metrics.decided(mode: mode, seconds: Self.seconds(since: started))
        logger.debug("picked", metadata: [
            "request.id": "\(request.requestID)", "session": "\(request.sessionKey ?? "-")", "endpoint": "\(primary)",
            "policy": "\(decision.mode)", "mode": "\(mode)",
            "matched_prefix_blocks": "\(decision.result?.explanation.matchedPrefixBlocks ?? 0)",
            "decision_us": "\(Int(decision.decisionSeconds * 1e6))",
        ])
        return lease
    }

    /// The request the core decides on: the body parsed once when there is one.
    static func inferenceRequest(
        _ info: ExtProcStream.RequestInfo, body: [UInt8], phase: ExtProcStream.Phase, subsetHint: [EndpointAddress]?
    ) throws -> InferenceRequest {
        var model = "", prompt = PromptContent.none
        let apiKind = APIKind(path: info.path)
        if phase != .headers, let apiKind {
            let parsed = try OpenAIRequestParser.parse(body: body, apiKind: apiKind)
            model = parsed.model
            prompt = parsed.prompt
        }
        var pluginHeaders: [String: String] = [:]
        for name in Self.pluginHeaders { pluginHeaders[name] = info.headers[name] }
        return InferenceRequest(
            requestID: info.headers["x-request-id"] ?? UUID().uuidString, model: model, apiKind: apiKind ?? .chatCompletions,
            prompt: prompt, sessionKey: info.sessionKey, headers: pluginHeaders, subsetHint: subsetHint)
    }

    /// Whether response headers announce an event stream (`content-type: text/event-stream`).
    static func isEventStream(_ headers: [(String, String)]) -> Bool {
        headers.contains { $0.0.lowercased() == "content-type" && $0.1.lowercased().hasPrefix("text/event-stream") }
    }

    /// The request headers plugins read: the session token, cookies and the SLO headers.
    static let pluginHeaders = [SessionKey.tokenHeader, "cookie"] + RequestSLO.headers

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}
