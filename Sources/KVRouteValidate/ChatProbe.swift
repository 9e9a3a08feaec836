import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Sends the validator's requests to the gateway: `GET /v1/models`, and streaming chat
/// completions with the session headers, timing the first streamed content token.
struct ChatProbe: Sendable {
    let client: HTTPClient
    let settings: ValidationSettings

    var base: String { settings.gatewayURL.hasSuffix("/") ? String(settings.gatewayURL.dropLast()) : settings.gatewayURL }

    /// `GET /v1/models`: nil when the model is listed, else a reason to warn about. Throws
    /// (exit 3) only when the gateway cannot be reached at all, so that fails fast.
    func models() async throws -> String? {
        var req = HTTPClientRequest(url: base + "/v1/models")
        if let host = settings.host { req.headers.replaceOrAdd(name: "host", value: host) }
        let res: HTTPClientResponse
        do {
            res = try await client.execute(req, timeout: .seconds(10))
        } catch {
            throw ValidationFailure(.gateway, "the gateway at \(settings.gatewayURL) is unreachable: \(ValidationFailure.describe(error))", cause: error)
        }
        guard let body = try? await res.body.collect(upTo: 4 << 20) else { return "GET /v1/models: the response broke off" }
        guard res.status == .ok else { return "GET /v1/models answered HTTP \(res.status.code)" }
        struct Models: Decodable {
            struct Model: Decodable { var id: String }
            var data: [Model]
        }
        guard let models = try? JSONDecoder().decode(Models.self, from: Data(body.readableBytesView)) else {
            return "GET /v1/models did not answer an OpenAI model list"
        }
        let ids = models.data.map(\.id)
        if ids.contains(settings.model) { return nil }
        return ids.isEmpty ? "GET /v1/models lists no models" : "the gateway lists the models \(ids.joined(separator: ", ")), not \(settings.model)"
    }

    /// The chat body: the long shared system prompt and a fixed user turn, temperature 0.
    func body(session: String, short: Bool) -> ByteBuffer {
        let messages: [[String: String]] = short
            ? [["role": "user", "content": "Reply with one word."]]
            : [["role": "system", "content": settings.prompt(for: session)], ["role": "user", "content": settings.userMessage]]
        let b: [String: Any] = [
            "model": settings.model, "max_tokens": short ? 1 : settings.maxTokens, "temperature": 0, "stream": true,
            "stream_options": ["include_usage": true], "messages": messages,
        ]
        return ByteBuffer(bytes: Array((try? JSONSerialization.data(withJSONObject: b)) ?? Data()))
    }

    /// One streaming request. Never throws: failures are recorded in the sample. `short`
    /// sends a one-token request (the health check), which warms no cache.
    func send(session: String, index: Int = 0, loopStart: ContinuousClock.Instant = .now, short: Bool = false) async -> ChatSample {
        var req = HTTPClientRequest(url: base + "/v1/chat/completions")
        req.method = .POST
        req.headers.add(name: "content-type", value: "application/json")
        req.headers.add(name: "accept", value: "text/event-stream")
        req.headers.add(name: "x-session-id", value: session)
        req.headers.add(name: "session-id", value: session)
        if let host = settings.host { req.headers.replaceOrAdd(name: "host", value: host) }
        req.body = .bytes(body(session: session, short: short))
        let start = ContinuousClock.now
        var sample = ChatSample(session: session, index: index, sentAt: Self.seconds(start - loopStart), status: 0, total: 0)
        do {
            let res = try await client.execute(req, timeout: .seconds(300))
            sample.status = Int(res.status.code)
            sample.upstream = res.headers.first(name: "x-upstream-host") ?? res.headers.first(name: "x-inference-pod")
            var stream = SSEReader()
            var raw = ""
            for try await chunk in res.body {
                if res.status != .ok {
                    if raw.utf8.count < 1 << 16 { raw += String(buffer: chunk) }
                    continue
                }
                for event in stream.feed(chunk.readableBytesView) {
                    if sample.ttft == nil, event.hasText { sample.ttft = Self.seconds(ContinuousClock.now - start) }
                    if let u = event.promptTokens { sample.promptTokens = u }
                    if let c = event.cachedTokens { sample.cachedTokens = c }
                    if let e = event.error, sample.error == nil { sample.error = "error event in the stream: \(e)" }
                }
            }
            sample.total = Self.seconds(ContinuousClock.now - start)
            if res.status != .ok {
                sample.error = "HTTP \(res.status.code): " + (Self.errorMessage(raw) ?? (raw.isEmpty ? res.status.reasonPhrase : String(raw.prefix(200))))
            } else if sample.error == nil && sample.ttft == nil {
                sample.error = "the stream carried no tokens"
            }
        } catch {
            sample.total = Self.seconds(ContinuousClock.now - start)
            sample.error = ValidationFailure.describe(error)
        }
        if let e = sample.error { sample.error = ValidationFailure.oneLine(e) }
        return sample
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    /// The message of an OpenAI (`{"error": {"message"}}`) or FastAPI (`{"detail"}`) error body.
    static func errorMessage(_ body: String) -> String? {
        guard let json = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] else { return nil }
        if let e = json["error"] as? [String: Any], let m = e["message"] as? String { return m }
        if let e = json["error"] as? String { return e }
        return json["message"] as? String ?? json["detail"] as? String
    }
}
