import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// One timed request through the gateway.
public struct ChatSample: Sendable {
    public var session: String
    public var status: Int
    /// Seconds to the first streamed content token (nil when none came).
    public var ttft: Double?
    public var total: Double
    /// `x-upstream-host`, else `x-inference-pod`.
    public var upstream: String?
    public var error: String?
}

/// Sends the validator's chat requests: streaming, with the session headers, timing the
/// first content token.
struct ChatProbe: Sendable {
    let client: HTTPClient
    let settings: ValidationSettings

    var url: String {
        (settings.gatewayURL.hasSuffix("/") ? String(settings.gatewayURL.dropLast()) : settings.gatewayURL) + "/v1/chat/completions"
    }

    func body(stream: Bool, session: String) -> ByteBuffer {
        let b: [String: Any] = [
            "model": settings.model, "max_tokens": settings.maxTokens, "temperature": 0, "stream": stream,
            "messages": [["role": "system", "content": settings.prompt(for: session)], ["role": "user", "content": "Give me your recommendation for reducing customer churn."]],
        ]
        return ByteBuffer(bytes: Array((try? JSONSerialization.data(withJSONObject: b)) ?? Data()))
    }

    func send(session: String, stream: Bool = true) async -> ChatSample {
        var req = HTTPClientRequest(url: url)
        req.method = .POST
        req.headers.add(name: "content-type", value: "application/json")
        req.headers.add(name: "x-session-id", value: session)
        req.headers.add(name: "session-id", value: session)
        if let host = settings.host { req.headers.replaceOrAdd(name: "host", value: host) }
        req.body = .bytes(body(stream: stream, session: session))
        let start = ContinuousClock.now
        func since() -> Double {
            let d = ContinuousClock.now - start
            return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        }
        do {
            let res = try await client.execute(req, timeout: .seconds(300))
            let upstream = res.headers.first(name: "x-upstream-host") ?? res.headers.first(name: "x-inference-pod")
            var ttft: Double?
            var text = ""
            var pending = ""
            for try await chunk in res.body {
                let s = String(buffer: chunk)
                if text.utf8.count < 1 << 16 { text += s }
                guard ttft == nil, res.status == .ok else { continue }
                pending += s
                // SSE events end with a blank line; the first one carrying text marks TTFT.
                while let r = pending.range(of: "\n\n") {
                    let event = pending[..<r.lowerBound]
                    pending = String(pending[r.upperBound...])
                    if Self.carriesText(event) { ttft = since(); break }
                }
            }
            var errorText: String?
            if res.status != .ok {
                errorText = Self.errorMessage(text) ?? "HTTP \(res.status.code)"
            } else if text.contains("\"error\"") {
                errorText = Self.errorMessage(text.components(separatedBy: "data: ").first { $0.contains("\"error\"") } ?? text) ?? "error event in the stream"
            } else if ttft == nil {
                errorText = "the stream carried no tokens"
            }
            return ChatSample(session: session, status: Int(res.status.code), ttft: ttft, total: since(), upstream: upstream, error: errorText)
        } catch {
            return ChatSample(session: session, status: 0, ttft: nil, total: since(), upstream: nil, error: "\(error)")
        }
    }

    /// True for an SSE event whose first choice carries generated text.
    static func carriesText(_ event: Substring) -> Bool {
        guard let start = event.range(of: "data:") else { return false }
        let payload = event[start.upperBound...].trimmingCharacters(in: .whitespaces)
        guard payload != "[DONE]", let json = try? JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any],
              let choice = (json["choices"] as? [[String: Any]])?.first else { return false }
        let text = ((choice["delta"] as? [String: Any])?["content"] as? String) ?? (choice["text"] as? String) ?? ""
        return !text.isEmpty
    }

    static func errorMessage(_ body: String) -> String? {
        guard let data = body.trimmingCharacters(in: .whitespacesAndNewlines).data(using: .utf8),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        if let e = json["error"] as? [String: Any] { return e["message"] as? String }
        return json["message"] as? String ?? json["detail"] as? String
    }

    /// `GET /v1/models`: nil when fine, else the reason; throws when the gateway cannot be
    /// reached at all (within 5 s), so an unreachable gateway fails fast.
    func models() async throws -> String? {
        let base = settings.gatewayURL.hasSuffix("/") ? String(settings.gatewayURL.dropLast()) : settings.gatewayURL
        var req = HTTPClientRequest(url: base + "/v1/models")
        if let host = settings.host { req.headers.replaceOrAdd(name: "host", value: host) }
        do {
            let res: HTTPClientResponse
            do { res = try await client.execute(req, timeout: .seconds(5)) } catch {
                throw ValidationFailure(.gateway, "the gateway at \(settings.gatewayURL) is unreachable: \(error)")
            }
            let body = try await res.body.collect(upTo: 4 << 20)
            guard res.status == .ok else { return "GET /v1/models answered HTTP \(res.status.code)" }
            let json = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any]
            let ids = ((json?["data"] as? [[String: Any]]) ?? []).compactMap { $0["id"] as? String }
            return ids.contains(settings.model) ? nil : "the gateway's models are \(ids), not \(settings.model)"
        } catch let f as ValidationFailure {
            throw f
        } catch {
            return "GET /v1/models failed: \(error)"
        }
    }
}
