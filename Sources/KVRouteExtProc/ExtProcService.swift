import Foundation
import GRPCCore
import HTTPTypes
import KVRouteCore
import KVRouteDataLayer
import KVRouteGateway
import KVRouteProto
import Logging

/// The Envoy external processor: for each HTTP request, decides the engine with the routing
/// core and tells Envoy through `x-gateway-destination-endpoint` and `envoy.lb` metadata.
/// The stream's phases are ``ExtProcStream``; this type only reads, decides and writes.
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

    let pool: EndpointPool
    /// The KV-cache-aware picker.
    let picker: RoutingPolicy
    /// Consistent hash on the session id, for sessions routed from headers alone.
    let ring: RoutingPolicy
    let metrics: EPPMetrics
    let logger: Logger
    let options: Options

    init(pool: EndpointPool, picker: RoutingPolicy, ring: RoutingPolicy, metrics: EPPMetrics, logger: Logger, options: Options) {
        self.pool = pool
        self.picker = picker
        self.ring = ring
        self.metrics = metrics
        self.logger = logger
        self.options = options
    }

    /// What a stream routed, for the response side and the scheduler's bookkeeping.
    struct Routed {
        var request: InferenceRequest
        var policy: RoutingPolicy
        var endpoint: EndpointAddress
    }

    public func process(
        request: RPCAsyncSequence<Envoy_Service_ExtProc_V3_ProcessingRequest, any Error>,
        response: RPCWriter<Envoy_Service_ExtProc_V3_ProcessingResponse>,
        context: ServerContext
    ) async throws {
        let opened = ContinuousClock.now
        var stream = ExtProcStream()
        var subsetHint: [EndpointAddress]?
        var routed: Routed?
        var responded = false
        defer {
            if let routed { routed.policy.finished(routed.request, servedBy: routed.endpoint) }
        }
        for try await message in request {
            let action: ExtProcStream.Action
            switch message.request {
            case .requestHeaders(let h)?:
                let mode = ExtProcMessages.bodyMode(message.protocolConfig.requestBodyMode)
                metrics.streamOpened(mode: h.endOfStream ? .none : mode)
                subsetHint = ExtProcMessages.subsetHint(message.metadataContext)
                let pairs = ExtProcMessages.headers(h.headers)
                action = stream.requestHeaders(
                    pairs, session: Self.session(pairs), endOfStream: h.endOfStream,
                    requestMode: mode, responseMode: ExtProcMessages.bodyMode(message.protocolConfig.responseBodyMode))
            case .requestBody(let b)?:
                action = stream.requestBody(Array(b.body), endOfStream: b.endOfStream)
            case .requestTrailers?:
                action = stream.requestTrailers()
            case .responseHeaders(let h)?:
                action = stream.responseHeaders(endOfStream: h.endOfStream)
            case .responseBody(let b)?:
                action = stream.responseBody(Array(b.body), endOfStream: b.endOfStream)
            case .responseTrailers?:
                action = stream.responseTrailers()
            case nil:
                continue
            }
            let r = try await perform(action, routed: routed, subsetHint: subsetHint, mode: stream.requestMode, response)
            if let r { routed = r }
            if stream.responseComplete, !responded, let routed {
                responded = true
                metrics.responded(model: routed.request.model, seconds: Self.seconds(since: opened), usage: ResponseUsage.parse(tail: stream.responseTail))
            }
        }
    }

    /// Carries out one action; returns the routing when it decided one.
    func perform(
        _ action: ExtProcStream.Action, routed: Routed?, subsetHint: [EndpointAddress]?, mode: ExtProcStream.BodyMode,
        _ response: RPCWriter<ProcessingResponse>
    ) async throws -> Routed? {
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
            if let e = routed?.endpoint {
                common.headerMutation.setHeaders = [ExtProcMessages.option(Self.sessionTokenHeader, SessionAffinityScorer.token(for: e))]
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
            metrics.request(model: "", endpoint: nil, errorCode: status)
            r = ExtProcMessages.immediate(status: status, message: message)
        case .protocolError(let why):
            throw RPCError(code: .failedPrecondition, message: why)
        case .decide(let info, let body, let phase):
            return try await decide(info, body: body, phase: phase, subsetHint: subsetHint, mode: mode, response)
        }
        try await response.write(r)
        return nil
    }

    func decide(
        _ info: ExtProcStream.RequestInfo, body: [UInt8], phase: ExtProcStream.Phase, subsetHint: [EndpointAddress]?,
        mode: ExtProcStream.BodyMode, _ response: RPCWriter<ProcessingResponse>
    ) async throws -> Routed? {
        let started = ContinuousClock.now
        let request: InferenceRequest
        let policy: RoutingPolicy
        let decision: RoutingDecision
        do {
            request = try Self.inferenceRequest(info, body: body, phase: phase, subsetHint: subsetHint)
            // From headers alone, a session goes where the consistent hash puts it: the same
            // engine for every request of the session, across picker restarts. A session
            // token, or a body to read, hands the choice to the picker.
            let byRing = phase == .headers && request.sessionKey != nil && request.headers[Self.sessionTokenHeader] == nil
            policy = byRing ? ring : picker
            var snapshots = pool.snapshots()
            if byRing, let hint = request.subsetHint {
                let allowed = Set(hint)
                snapshots = snapshots.filter { allowed.contains($0.address) }
                guard !snapshots.isEmpty else { throw KVRouteError(code: .noCandidates, message: "no known endpoint matches the subset hint") }
            }
            decision = try policy.decide(request, snapshots: snapshots, maxAttempts: options.maxAttempts)
            guard !decision.endpoints.isEmpty else { throw KVRouteError(code: .noCandidates, message: "no endpoint can take the request") }
        } catch let e as KVRouteError {
            let status = ExtProcMessages.status(for: e)
            metrics.request(model: "", endpoint: nil, errorCode: status)
            logger.debug("rejected", metadata: ["status": "\(status)", "error": "\(e)", "path": "\(info.path)"])
            try await response.write(ExtProcMessages.immediate(status: status, message: e.message))
            return nil
        }
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
        metrics.decided(decision, mode: mode, seconds: Self.seconds(since: started))
        metrics.request(model: request.model, endpoint: primary, errorCode: nil)
        logger.debug("picked", metadata: [
            "request.id": "\(request.requestID)", "session": "\(request.sessionKey ?? "-")", "endpoint": "\(primary)",
            "policy": "\(policy.mode.rawValue)", "mode": "\(mode)",
            "matched_prefix_blocks": "\(decision.result?.explanation.matchedPrefixBlocks ?? 0)",
            "decision_us": "\(Int(decision.decisionSeconds * 1e6))",
        ])
        return Routed(request: request, policy: policy, endpoint: primary)
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

    /// The seed's session normalization (the gateway's): `x-session-id`, else the
    /// `session-id` header or cookie.
    static func session(_ pairs: [(String, String)]) -> String? {
        var fields = HTTPFields()
        for (k, v) in pairs {
            switch k.lowercased() {
            case "x-session-id", "session-id", "cookie":
                if let name = HTTPField.Name(k) { fields.append(HTTPField(name: name, value: v)) }
            default: continue
            }
        }
        return SessionKey.normalize(fields)
    }

    /// The session token a response carries (base64 of the engine's `ip:port`) and the
    /// next request sends back; session-affinity-scorer reads it.
    static let sessionTokenHeader = "x-session-token"
    /// The request headers plugins read.
    static let pluginHeaders = [sessionTokenHeader, "cookie"]

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}
