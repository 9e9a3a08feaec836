import Foundation
import GRPCCore
import KVRouteCore
import KVRouteDataLayer
import KVRouteGateway
import KVRouteProto
import Logging
import Prometheus
import SwiftProtobuf

/// The Envoy external processor: for each HTTP request, decides the engine with the routing
/// core and tells Envoy through `x-gateway-destination-endpoint` and `envoy.lb` metadata.
public final class ExtProcService: Envoy_Service_ExtProc_V3_ExternalProcessor.SimpleServiceProtocol, Sendable {
    let pool: EndpointPool
    let picker: RoutingPolicy
    let ring: RoutingPolicy
    let metrics: GatewayMetrics
    let logger: Logger
    let maxAttempts: Int

    init(pool: EndpointPool, picker: RoutingPolicy, ring: RoutingPolicy, metrics: GatewayMetrics, logger: Logger, maxAttempts: Int = 3) {
        self.pool = pool
        self.picker = picker
        self.ring = ring
        self.metrics = metrics
        self.logger = logger
        self.maxAttempts = maxAttempts
    }

    public func process(
        request: RPCAsyncSequence<Envoy_Service_ExtProc_V3_ProcessingRequest, any Error>,
        response: RPCWriter<Envoy_Service_ExtProc_V3_ProcessingResponse>,
        context: ServerContext
    ) async throws {
        var stream = ExtProcStream()
        var routed: (InferenceRequest, RoutingPolicy, EndpointAddress)?
        defer { if let (r, policy, e) = routed { policy.finished(r, servedBy: e) } }
        for try await message in request {
            switch message.request {
            case .requestHeaders(let h)?:
                let mode = ExtProcMessages.bodyMode(message)
                metrics.eppStream(mode: mode)
                let action = stream.requestHeaders(ExtProcMessages.headers(h.headers), endOfStream: h.endOfStream, bodyMode: mode)
                if let r = try await perform(action, response) { routed = r }
            case .requestBody(let b)?:
                if let r = try await perform(stream.requestBody(Array(b.body), endOfStream: b.endOfStream), response) { routed = r }
            case .requestTrailers?:
                if let r = try await perform(stream.requestTrailers(), response) { routed = r }
            case .responseHeaders?:
                var r = ProcessingResponse()
                var common = Envoy_Service_ExtProc_V3_CommonResponse()
                if let e = routed?.2 { common.headerMutation.setHeaders = [ExtProcMessages.option("x-upstream-host", e.description)] }
                r.responseHeaders.response = common
                try await response.write(r)
            case .responseBody(let b)?:
                var r = ProcessingResponse()
                if stream.mode == .fullDuplex {
                    // Full duplex expects the body back as a streamed mutation.
                    var m = Envoy_Service_ExtProc_V3_StreamedBodyResponse()
                    m.body = b.body
                    m.endOfStream = b.endOfStream
                    r.responseBody.response.bodyMutation.streamedResponse = m
                } else {
                    r.responseBody.response = Envoy_Service_ExtProc_V3_CommonResponse()
                }
                try await response.write(r)
            case .responseTrailers?:
                var r = ProcessingResponse()
                r.responseTrailers = Envoy_Service_ExtProc_V3_TrailersResponse()
                try await response.write(r)
            case nil:
                continue
            }
        }
    }

    /// Carries out one action; returns the routing when it decided one.
    func perform(_ action: ExtProcStream.Action, _ response: RPCWriter<ProcessingResponse>) async throws -> (InferenceRequest, RoutingPolicy, EndpointAddress)? {
        switch action {
        case .hold:
            return nil
        case .continueBody:
            var r = ProcessingResponse()
            r.requestBody.response = Envoy_Service_ExtProc_V3_CommonResponse()
            try await response.write(r)
            return nil
        case .continueHeaders(let remove):
            var r = ProcessingResponse()
            r.requestHeaders.response.headerMutation.removeHeaders = remove
            try await response.write(r)
            return nil
        case .continueResponseHeaders, .continueResponseBody:
            return nil
        case .continueTrailers:
            var r = ProcessingResponse()
            r.requestTrailers = Envoy_Service_ExtProc_V3_TrailersResponse()
            try await response.write(r)
            return nil
        case .decide(let info, let body, let phase):
            let started = ContinuousClock.now
            let apiKind = APIKind(path: info.path) ?? .chatCompletions
            var model = ""
            var prompt = PromptContent.none
            if !body.isEmpty || phase != .headers {
                do {
                    let parsed = try OpenAIRequestParser.parse(body: body, apiKind: apiKind)
                    model = parsed.model
                    prompt = parsed.prompt
                } catch let e as KVRouteError {
                    metrics.requestCompleted(model: "", endpoint: nil, seconds: 0, errorCode: "400")
                    try await response.write(ExtProcMessages.immediate(status: 400, message: e.message))
                    return nil
                }
            }
            let request = InferenceRequest(
                requestID: UUID().uuidString, model: model, apiKind: apiKind, prompt: prompt, sessionKey: info.sessionKey,
                headers: info.headers.filter { $0.key == "x-session-token" }, subsetHint: info.subsetHint)
            // Headers only: a session goes where the mesh's consistent hash would send it, so
            // sessions keep their engine whether or not the picker is up.
            let policy = (phase == .headers && info.sessionKey != nil) ? ring : picker
            let decision: RoutingDecision
            do {
                decision = try policy.decide(request, snapshots: pool.snapshots(), maxAttempts: maxAttempts)
            } catch let e as KVRouteError {
                let status = e.code == .noCapacity ? 429 : e.code == .noCandidates ? 503 : 500
                metrics.requestCompleted(model: model, endpoint: nil, seconds: 0, errorCode: String(status))
                try await response.write(ExtProcMessages.immediate(status: status, message: e.message))
                return nil
            }
            metrics.decided(decision)
            guard let primary = decision.endpoints.first else {
                try await response.write(ExtProcMessages.immediate(status: 503, message: "no endpoint can take the request"))
                return nil
            }
            // The header names the primary (Envoy's ORIGINAL_DST cluster takes one ip:port);
            // the metadata carries primary and fallbacks for gateways that retry along it.
            let destination = primary.description
            var r = ProcessingResponse()
            r.dynamicMetadata = ExtProcMessages.metadata(destination: decision.endpoints.map(\.description).joined(separator: ","))
            switch phase {
            case .headers:
                r.requestHeaders.response = ExtProcMessages.routing(destination: destination, remove: info.forgedHeaders)
                try await response.write(r)
            case .body:
                r.requestBody.response = ExtProcMessages.routing(destination: destination, remove: info.forgedHeaders)
                try await response.write(r)
            case .headersThenBody:
                r.requestHeaders.response = ExtProcMessages.routing(
                    destination: destination, remove: info.forgedHeaders + ["transfer-encoding"], extra: [("content-length", String(body.count))])
                try await response.write(r)
                var b = ProcessingResponse()
                var streamed = Envoy_Service_ExtProc_V3_StreamedBodyResponse()
                streamed.body = Data(body)
                streamed.endOfStream = true
                b.requestBody.response.bodyMutation.streamedResponse = streamed
                try await response.write(b)
            }
            metrics.requestCompleted(model: model, endpoint: primary, seconds: Self.seconds(since: started), errorCode: nil)
            logger.info("picked", metadata: [
                "request.id": "\(request.requestID)", "session": "\(info.sessionKey ?? "-")", "endpoint": "\(primary)",
                "mode": "\(policy.mode.rawValue)", "phase": "\(phase)",
                "matched_prefix_blocks": "\(decision.result?.explanation.matchedPrefixBlocks ?? 0)",
                "decision_us": "\(Int(decision.decisionSeconds * 1e6))",
            ])
            return (request, policy, primary)
        }
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}
