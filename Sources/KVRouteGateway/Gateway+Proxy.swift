import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import KVRouteCore
import KVRouteDataLayer
import Logging
import NIOCore
import NIOHTTP1

extension Gateway {
    /// One completion: parse once, decide, then proxy to the chosen endpoint, retrying the
    /// next one on a connect failure or a 5xx before the first response byte. After that
    /// the body streams through chunk by chunk; an upstream failure mid-stream ends an SSE
    /// stream with an error event. Every request gets exactly one answer.
    func complete(_ req: Request, _ ctx: BasicRequestContext, kind: APIKind) async throws -> Response {
        let started = ContinuousClock.now
        let requestID = req.headers[Self.requestIDHeader] ?? UUID().uuidString.lowercased()
        if let type = req.headers[.contentType], !type.lowercased().contains("json") {
            throw GatewayError(.unsupportedMediaType, "Unsupported Content-Type \"\(type)\"; send application/json")
        }
        if let length = req.headers[.contentLength].flatMap(Int.init), length > configuration.maxBodyBytes {
            throw GatewayError(.contentTooLarge, "Request body of \(length) bytes exceeds the limit of \(configuration.maxBodyBytes) bytes")
        }
        let body: ByteBuffer
        do {
            body = try await req.body.collect(upTo: configuration.maxBodyBytes)
        } catch is NIOTooManyBytesError {
            throw GatewayError(.contentTooLarge, "Request body exceeds the limit of \(configuration.maxBodyBytes) bytes")
        }
        let parsed: (model: String, prompt: PromptContent, stream: Bool)
        do {
            parsed = try OpenAIRequestParser.parse(body: Array(body.readableBytesView), apiKind: kind)
        } catch let e as KVRouteError {
            metrics.requestCompleted(model: "", endpoint: nil, seconds: 0, errorCode: "400")
            throw GatewayError(.badRequest, e.message)
        }
        let session = SessionKey.normalize(req.headers)
        var pluginHeaders: [String: String] = [:]
        for f in req.headers where f.name.canonicalName == "x-session-token" { pluginHeaders["x-session-token"] = f.value }
        let inference = InferenceRequest(
            requestID: requestID, model: parsed.model, apiKind: kind, prompt: parsed.prompt,
            sessionKey: session, headers: pluginHeaders, subsetHint: nil)

        let decision: RoutingDecision
        do {
            decision = try policy.decide(inference, snapshots: pool.snapshots(), maxAttempts: configuration.maxAttempts)
        } catch let e as KVRouteError {
            metrics.requestCompleted(model: parsed.model, endpoint: nil, seconds: Self.seconds(since: started), errorCode: "503")
            throw GatewayError(.serviceUnavailable, "no endpoint can take the request: \(e.message)")
        }
        metrics.decided(decision)
        let explain = configuration.alwaysExplain || req.headers[Self.explainRequestHeader].map { $0 == "1" || $0.lowercased() == "true" } ?? false

        var failures: [String] = []
        for (attempt, endpoint) in decision.endpoints.enumerated() {
            guard let member = pool.member(endpoint) else { continue }
            let isLast = attempt == decision.endpoints.count - 1
            var upstream = HTTPClientRequest(url: member.baseURL + req.uri.path)
            upstream.method = .POST
            upstream.headers = forwardHeaders(req.headers, session: session, requestID: requestID)
            upstream.body = .bytes(body)
            let response: HTTPClientResponse
            do {
                response = try await client.execute(upstream, timeout: .seconds(Int64(configuration.upstreamTimeout)))
            } catch {
                pool.recordConnectFailure(endpoint, error: "\(error)")
                failures.append("\(endpoint): \(error)")
                if !isLast { metrics.retries.increment() }
                logger.warning("upstream failed before the response", metadata: ["request.id": "\(requestID)", "endpoint": "\(endpoint)", "error": "\(error)"])
                continue
            }
            if response.status.code >= 500 && !isLast {
                failures.append("\(endpoint): status \(response.status.code)")
                _ = try? await response.body.collect(upTo: 1 << 20)
                metrics.retries.increment()
                logger.warning("upstream answered 5xx; retrying", metadata: ["request.id": "\(requestID)", "endpoint": "\(endpoint)", "status": "\(response.status.code)"])
                continue
            }
            return proxied(response, endpoint: endpoint, decision: decision, inference: inference, explain: explain, started: started, attempt: attempt)
        }
        policy.finished(inference, servedBy: nil)
        metrics.requestCompleted(model: parsed.model, endpoint: nil, seconds: Self.seconds(since: started), errorCode: "502")
        throw GatewayError(.badGateway, "no endpoint could serve the request (\(failures.joined(separator: "; ")))")
    }

    /// Streams an upstream response back to the client.
    private func proxied(_ response: HTTPClientResponse, endpoint: EndpointAddress, decision: RoutingDecision, inference: InferenceRequest, explain: Bool, started: ContinuousClock.Instant, attempt: Int) -> Response {
        var headers = HTTPFields()
        var contentLength: Int?
        var isSSE = false
        for h in response.headers {
            let name = h.name.lowercased()
            if Self.hopByHop.contains(name) { continue }
            if name == "content-length" { contentLength = Int(h.value); continue }
            if name == "content-type" && h.value.lowercased().hasPrefix("text/event-stream") { isSSE = true }
            if let n = HTTPField.Name(h.name) { headers.append(HTTPField(name: n, value: h.value)) }
        }
        headers[Self.upstreamHostHeader] = endpoint.description
        if explain { headers[Self.decisionHeader] = decisionHeaderValue(decision) }
        let status = HTTPResponse.Status(code: Int(response.status.code))
        let logger = self.logger, metrics = self.metrics, policy = self.policy, dashboard = self.dashboard
        let matched = decision.result?.explanation.matchedPrefixBlocks ?? 0
        let streaming = isSSE
        return Response(status: status, headers: headers, body: ResponseBody(contentLength: streaming ? nil : contentLength) { writer in
            var upstreamError: (any Error)?
            var iterator = response.body.makeAsyncIterator()
            while true {
                let chunk: ByteBuffer?
                do { chunk = try await iterator.next() } catch { upstreamError = error; break }
                guard let chunk else { break }
                do { try await writer.write(chunk) } catch {
                    // The client went away; stop reading upstream.
                    upstreamError = nil
                    break
                }
            }
            if let upstreamError, streaming {
                let e = GatewayError(.badGateway, "upstream \(endpoint) failed mid-stream: \(upstreamError)")
                try? await writer.write(e.sseEvent)
                try? await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
            }
            policy.finished(inference, servedBy: endpoint)
            dashboard.recordRouted(endpoint, session: inference.sessionKey, decisionSeconds: decision.decisionSeconds)
            let seconds = Self.seconds(since: started)
            metrics.requestCompleted(model: inference.model, endpoint: endpoint, seconds: seconds, errorCode: upstreamError != nil ? "502" : (status.code >= 400 ? String(status.code) : nil))
            logger.info("routed", metadata: [
                "request.id": "\(inference.requestID)", "session": "\(inference.sessionKey ?? "-")", "endpoint": "\(endpoint)",
                "mode": "\(decision.mode.rawValue)", "matched_prefix_blocks": "\(matched)",
                "decision_us": "\(Int(decision.decisionSeconds * 1_000_000))", "attempt": "\(attempt + 1)", "status": "\(status.code)",
                "duration_ms": "\(Int(seconds * 1000))",
            ])
            try await writer.finish(nil)
        })
    }

    func decisionHeaderValue(_ d: RoutingDecision) -> String {
        if let r = d.result { return r.explanation.headerValue() }
        return "mode=\(d.mode.rawValue)" + (d.fallbackReason.map { "; fallback=\($0.prefix(120))" } ?? "") + "; endpoints=" + d.endpoints.map(\.description).joined(separator: ",")
    }

    /// Request headers sent upstream: the client's, minus hop-by-hop headers, routing
    /// headers a client must never set, and the length (the body is re-sent whole).
    func forwardHeaders(_ incoming: HTTPFields, session: String?, requestID: String) -> HTTPHeaders {
        var out = HTTPHeaders()
        for f in incoming {
            let name = f.name.canonicalName
            if Self.hopByHop.contains(name) || name == "host" || name == "content-length" || name.hasPrefix(Self.destinationHeaderPrefix) { continue }
            out.add(name: f.name.rawName, value: f.value)
        }
        if let session, out["x-session-id"].isEmpty { out.add(name: "x-session-id", value: session) }
        if out["x-request-id"].isEmpty { out.add(name: "x-request-id", value: requestID) }
        if out["content-type"].isEmpty { out.add(name: "content-type", value: "application/json") }
        return out
    }

    static let hopByHop: Set<String> = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"]

    /// `/v1/models` from the first healthy endpoint.
    func models(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let members = pool.members.filter(pool.isHealthy) + pool.members.filter { !pool.isHealthy($0) }
        for m in members {
            do {
                let res = try await client.execute(HTTPClientRequest(url: m.baseURL + "/v1/models"), timeout: .seconds(5))
                let body = try await res.body.collect(upTo: 4 << 20)
                guard res.status == .ok else { continue }
                return Response(status: .ok, headers: [.contentType: "application/json", Self.upstreamHostHeader: m.address.description], body: .init(byteBuffer: body))
            } catch {
                continue
            }
        }
        throw GatewayError(.serviceUnavailable, "no endpoint answered /v1/models")
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}
