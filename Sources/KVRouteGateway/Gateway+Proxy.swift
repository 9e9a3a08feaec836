import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import KVRouteCore
import KVRouteDataLayer
import KVRouteRouting
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

extension Gateway {
    /// One completion: parse once, decide, then proxy to the chosen endpoint. Another
    /// endpoint is tried only when that is safe: the request never reached the engine
    /// (connection refused, connect timeout) or the engine answered 5xx/429 before any byte
    /// went to the client. A request the engine may have started on is never re-sent. One
    /// request never marks an endpoint unhealthy: health is the prober's (an engine that
    /// refuses connections fails its next probe within the probe interval). Non-streaming
    /// answers are read whole first, so a cut-off or silent engine becomes a clean 502/504;
    /// streams pass through chunk by chunk and end with an error event when the engine
    /// fails, goes silent for `upstreamIdleTimeout` or runs past `upstreamTimeout`. Every
    /// request gets exactly one answer, and its ``RoutingLease`` ends exactly once, naming the
    /// endpoint that served it (a fallback's answer moves the in-flight count and the prefix
    /// index there). Answers carry `x-session-token` naming that endpoint.
    func complete(_ req: Request, _ ctx: BasicRequestContext, kind: APIKind) async throws -> Response {
        let span = RequestSpan.start(.gateway, path: req.uri.path) { name in HTTPField.Name(name).flatMap { req.headers[$0] } }
        do {
            return try await complete(req, kind: kind, span: span)
        } catch {
            // Requests that end here end their span here (an answer's span ends with its body).
            let e = error as? GatewayError
            span.refused(status: e.map { Int($0.status.code) } ?? 500, reason: e?.message ?? "\(error)")
            throw error
        }
    }

    private func complete(_ req: Request, kind: APIKind, span: RequestSpan) async throws -> Response {
        let started = ContinuousClock.now
        let timeout = configuration.upstreamTimeout
        let deadline = started + .milliseconds(timeout.isFinite ? Int64(min(max(timeout, 0), 1e9) * 1000) : 1_000_000_000_000)
        let clientRequestID = req.headers[Self.requestIDHeader]
        let requestID = clientRequestID ?? UUID().uuidString.lowercased()
        if let type = req.headers[.contentType], !type.lowercased().contains("json") {
            throw GatewayError(.unsupportedMediaType, "Unsupported Content-Type \"\(type.prefix(100))\"; send application/json")
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
            let status = OpenAIErrorBody.status(for: e)
            router.refused(model: "", status: status)
            throw GatewayError(HTTPResponse.Status(code: status), e.message)
        }
        let session = SessionKey.normalize(req.headers)
        var pluginHeaders: [String: String] = [:]
        for f in req.headers where Self.pluginHeaders.contains(f.name.canonicalName) { pluginHeaders[f.name.canonicalName] = f.value }
        let inference = InferenceRequest(
            requestID: requestID, model: parsed.model, apiKind: kind, prompt: parsed.prompt, sessionKey: session, headers: pluginHeaders)

        let lease: RoutingLease
        do {
            lease = try router.route(inference, started: started)
        } catch let e as KVRouteError {
            logger.warning("no endpoint can take the request", metadata: ["request.id": "\(requestID)", "error": "\(e.message)"])
            let status = OpenAIErrorBody.status(for: e)
            throw GatewayError(HTTPResponse.Status(code: status), status == 429 ? e.message : "no endpoint can take the request")
        }
        span.decided(lease)
        let explain = explanationAllowed(req.headers)
        let context = ProxyContext(requestID: requestID, lease: lease, explain: explain, deadline: deadline, span: span)

        var failures: [String] = []
        let endpoints = lease.endpoints
        for (attempt, endpoint) in endpoints.enumerated() {
            guard let member = pool.member(endpoint) else {
                failures.append("\(endpoint): left the pool")
                continue
            }
            let isLast = attempt == endpoints.count - 1
            var upstream = HTTPClientRequest(url: member.baseURL + req.uri.path)
            upstream.method = .POST
            upstream.headers = forwardHeaders(req.headers, session: session, requestID: requestID)
            upstream.body = .bytes(body)
            let response: HTTPClientResponse
            do {
                response = try await client.execute(upstream, deadline: NIODeadline.now() + .nanoseconds(Self.nanoseconds(deadline - .now)))
            } catch {
                failures.append("\(endpoint): \(error)")
                if Self.neverReachedEngine(error) {
                    if !isLast { metrics.retries.increment() }
                    logger.warning("engine unreachable; trying the next one", metadata: [
                        "request.id": "\(requestID)", "endpoint": "\(endpoint)", "error": "\(error)"])
                    continue
                }
                // The engine may have the request: sending it again could run it twice.
                let timedOut = ContinuousClock.now >= deadline
                lease.finished(servedBy: nil, outcome: .failed(code: timedOut ? 504 : 502))
                span.finished(servedBy: nil, outcome: .failed(code: timedOut ? 504 : 502))
                logger.error("engine failed before answering", metadata: [
                    "request.id": "\(requestID)", "endpoint": "\(endpoint)", "error": "\(error)", "failures": "\(failures.joined(separator: "; "))"])
                throw timedOut
                    ? GatewayError(.gatewayTimeout, "the engine did not answer in time")
                    : GatewayError(.badGateway, "the engine failed before answering")
            }
            let code = response.status.code
            if (code >= 500 || code == 429) && !isLast {
                // Nothing reached the client yet; dropping the response aborts it upstream.
                failures.append("\(endpoint): status \(code)")
                metrics.retries.increment()
                logger.warning("engine answered \(code); trying the next one", metadata: [
                    "request.id": "\(requestID)", "endpoint": "\(endpoint)", "status": "\(code)"])
                continue
            }
            // A fallback answers: the request is counted there from now on.
            lease.serving(endpoint)
            return try await answer(response, from: endpoint, attempt: attempt, context)
        }
        lease.finished(servedBy: nil, outcome: .failed(code: 502))
        span.finished(servedBy: nil, outcome: .failed(code: 502))
        logger.error("no endpoint could serve the request", metadata: [
            "request.id": "\(requestID)", "failures": "\(failures.joined(separator: "; "))"])
        throw GatewayError(.badGateway, "no endpoint could serve the request")
    }

    /// What one proxied request carries from the decision to its answer.
    struct ProxyContext: Sendable {
        var requestID: String
        var lease: RoutingLease
        var explain: Bool
        var deadline: ContinuousClock.Instant
        var span: RequestSpan
        var inference: InferenceRequest { lease.request }
        var decision: RoutingDecision { lease.decision }
    }

    /// Errors of a request that never left the gateway: another engine may take it.
    static func neverReachedEngine(_ error: any Error) -> Bool {
        if let e = error as? HTTPClientError { return e == .connectTimeout || e == .getConnectionFromPoolTimeout }
        if error is NIOConnectionError { return true }
        if let e = error as? ChannelError, case .connectTimeout = e { return true }
        if let e = error as? IOError { return [ECONNREFUSED, ENETUNREACH, EHOSTUNREACH].contains(e.errnoCode) }
        return false
    }

    /// The client's answer from one engine's response.
    private func answer(_ response: HTTPClientResponse, from endpoint: EndpointAddress, attempt: Int, _ c: ProxyContext) async throws -> Response {
        var headers = HTTPFields()
        var isSSE = false
        for h in response.headers {
            let name = h.name.lowercased()
            if Self.hopByHop.contains(name) || name == "content-length" { continue }
            if name == "content-type" && h.value.lowercased().hasPrefix("text/event-stream") { isSSE = true }
            if let n = HTTPField.Name(h.name) { headers.append(HTTPField(name: n, value: h.value)) }
        }
        headers[Self.upstreamHostHeader] = endpoint.description
        headers[Self.sessionTokenHeader] = c.lease.sessionToken
        if c.explain { headers[Self.decisionHeader] = decisionHeaderValue(c.decision) }
        let status = HTTPResponse.Status(code: Int(response.status.code))
        let idle = configuration.upstreamIdleTimeout

        guard isSSE else {
            // A whole answer's headers come with its last token: its time to first byte.
            c.lease.firstByte()
            let (body, outcome) = await UpstreamBody.collect(response.body, limit: configuration.maxResponseBytes, idle: idle, deadline: c.deadline)
            switch outcome {
            case .complete:
                let usage = ResponseUsage.parse(tail: Array(body.readableBytesView.suffix(ResponseUsage.tailBytes)))
                finished(c, endpoint: endpoint, attempt: attempt, status: status, outcome: .answered(status: status.code), usage: usage, streamed: false)
                return Response(status: status, headers: headers, body: .init(byteBuffer: body))
            case .upstreamFailed(let error):
                let timedOut = error is UpstreamBody.Timeout
                finished(c, endpoint: endpoint, attempt: attempt, status: status, outcome: .failed(code: timedOut ? 504 : 502), error: error)
                throw timedOut
                    ? GatewayError(.gatewayTimeout, "the engine stopped answering")
                    : GatewayError(.badGateway, "the engine's answer was cut short")
            case .consumerFailed(let error):
                finished(c, endpoint: endpoint, attempt: attempt, status: status, outcome: .failed(code: 502), error: error)
                throw GatewayError(.badGateway, "the engine's answer exceeds the gateway's limit of \(configuration.maxResponseBytes) bytes")
            }
        }
        return Response(status: status, headers: headers, body: ResponseBody { writer in
            var tail: [UInt8] = []
            var first = true
            let outcome = await UpstreamBody.pump(response.body, idle: idle, deadline: c.deadline) { chunk in
                // The stream's first event: the time to first token the routing core learns from.
                if first { c.lease.firstByte(); first = false }
                ResponseUsage.keepTail(&tail, chunk.readableBytesView)
                try await writer.write(chunk)
            }
            switch outcome {
            case .complete:
                self.finished(c, endpoint: endpoint, attempt: attempt, status: status, outcome: .answered(status: status.code), usage: ResponseUsage.parse(tail: tail), streamed: true)
            case .upstreamFailed(let error):
                let reason = error is UpstreamBody.Timeout ? "\(error)" : "the connection to the engine was lost"
                let e = GatewayError(.badGateway, "the engine failed mid-stream: \(reason)")
                try? await writer.write(e.sseEvent)
                try? await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                self.finished(c, endpoint: endpoint, attempt: attempt, status: status, outcome: .failed(code: 502), error: error)
            case .consumerFailed(let error):
                self.finished(c, endpoint: endpoint, attempt: attempt, status: status, outcome: .failed(code: 499), error: error)
            }
            try await writer.finish(nil)
        })
    }

    /// Ends the lease (bookkeeping and metrics), then the dashboard and the log line of a
    /// request an engine answered.
    private func finished(
        _ c: ProxyContext, endpoint: EndpointAddress, attempt: Int, status: HTTPResponse.Status, outcome: RoutingOutcome,
        usage: ResponseUsage? = nil, streamed: Bool? = nil, error: (any Error)? = nil
    ) {
        c.lease.finished(servedBy: endpoint, outcome: outcome, usage: usage, streamed: streamed)
        c.span.finished(servedBy: endpoint, outcome: outcome)
        if outcome == .answered(status: status.code), status.code < 400 {
            dashboard.recordRouted(endpoint, session: c.inference.sessionKey, decisionSeconds: c.decision.decisionSeconds)
        }
        let seconds = Self.seconds(since: c.lease.started)
        var metadata: Logger.Metadata = [
            "request.id": "\(c.requestID)", "session": "\(c.inference.sessionKey ?? "-")", "endpoint": "\(endpoint)",
            "mode": "\(c.decision.mode)", "matched_prefix_blocks": "\(c.decision.result?.explanation.matchedPrefixBlocks ?? 0)",
            "decision_us": "\(Int(c.decision.decisionSeconds * 1_000_000))", "attempt": "\(attempt + 1)", "status": "\(status.code)",
            "duration_ms": "\(Int(seconds * 1000))",
        ]
        if let error {
            metadata["error"] = "\(error)"
            logger.warning("routed; the answer failed", metadata: metadata)
        } else {
            logger.info("routed", metadata: metadata)
        }
    }

    /// Whether the request presents the operator's explain secret (compared in constant time).
    func explanationAllowed(_ headers: HTTPFields) -> Bool {
        guard let secret = configuration.explainSecret, let presented = headers[Self.explainRequestHeader] else { return false }
        return OperatorSecret.matches(presented, secret)
    }

    func decisionHeaderValue(_ d: RoutingDecision) -> String {
        if let r = d.result { return r.explanation.headerValue() }
        return "mode=\(d.mode)" + (d.fallbackReason.map { "; fallback=\($0.prefix(120))" } ?? "") + "; endpoints=" + d.endpoints.map(\.description).joined(separator: ",")
    }

    /// The request headers plugins read: the session token and the SLO headers
    /// (`x-slo-ttft-ms`, `x-slo-tpot-ms`, `x-gateway-inference-objective`).
    static let pluginHeaders: Set<String> = Set([SessionKey.tokenHeader] + RequestSLO.headers)

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
                let deadline = ContinuousClock.now + .seconds(5)
                let res = try await client.execute(HTTPClientRequest(url: m.baseURL + "/v1/models"), timeout: .seconds(5))
                guard res.status == .ok else { continue }
                let (body, outcome) = await UpstreamBody.collect(res.body, limit: 4 << 20, idle: .seconds(5), deadline: deadline)
                guard case .complete = outcome else { continue }
                return Response(status: .ok, headers: [.contentType: "application/json", Self.upstreamHostHeader: m.address.description], body: .init(byteBuffer: body))
            } catch {
                continue
            }
        }
        throw GatewayError(.serviceUnavailable, "no endpoint answered /v1/models")
    }

    static func nanoseconds(_ d: Duration) -> Int64 {
        max(0, d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000)
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}

/// The operator's secret, compared in time that depends only on the secret's length.
enum OperatorSecret {
    static func matches(_ presented: String, _ secret: String) -> Bool {
        let p = Array(presented.utf8), s = Array(secret.utf8)
        var diff: UInt8 = p.count == s.count ? 0 : 1
        for i in s.indices { diff |= (i < p.count ? p[i] : 0) ^ s[i] }
        return diff == 0
    }
}
