import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// A response read whole.
public struct TestResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: String
    public var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] }
}

public enum TestHTTP {
    public static func request(
        _ url: String, method: HTTPMethod = .GET, body: String? = nil, headers: [(String, String)] = [],
        contentType: String? = "application/json", chunked: Bool = false, timeout: TimeAmount = .seconds(60)
    ) async throws -> TestResponse {
        var req = HTTPClientRequest(url: url)
        req.method = method
        if let contentType { req.headers.add(name: "content-type", value: contentType) }
        for (k, v) in headers { req.headers.add(name: k, value: v) }
        if let body {
            if chunked {
                // An async sequence of pieces with no length: sent with transfer-encoding chunked.
                let bytes = Array(body.utf8)
                let pieces = stride(from: 0, to: bytes.count, by: 1000).map { ByteBuffer(bytes: bytes[$0..<min($0 + 1000, bytes.count)]) }
                req.body = .stream(pieces.async, length: .unknown)
            } else {
                req.body = .bytes(ByteBuffer(string: body))
            }
        }
        let res = try await HTTPClient.shared.execute(req, timeout: timeout)
        let data = try await res.body.collect(upTo: 64 << 20)
        return TestResponse(status: Int(res.status.code), headers: res.headers, body: String(buffer: data))
    }

    public static func postJSON(_ url: String, _ object: [String: Any], headers: [(String, String)] = []) async throws -> TestResponse {
        let data = try JSONSerialization.data(withJSONObject: object)
        return try await request(url, method: .POST, body: String(decoding: data, as: UTF8.self), headers: headers)
    }

    /// Value of an unlabelled-by-us sample line `name{...} value` summed over series.
    public static func metricSum(_ text: String, _ name: String) -> Double {
        var total = 0.0
        for line in text.split(separator: "\n") where line.hasPrefix(name + "{") || line.hasPrefix(name + " ") {
            if let v = line.split(separator: " ").last.flatMap({ Double($0) }) { total += v }
        }
        return total
    }
}

/// A plain async sequence over an array (AsyncHTTPClient streams request bodies from one).
public struct AsyncArray<Element: Sendable>: AsyncSequence, Sendable {
    let items: [Element]
    public struct AsyncIterator: AsyncIteratorProtocol {
        var index = 0
        let items: [Element]
        public mutating func next() async -> Element? {
            guard index < items.count else { return nil }
            defer { index += 1 }
            return items[index]
        }
    }
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(items: items) }
}

extension Array where Element: Sendable {
    public var async: AsyncArray<Element> { AsyncArray(items: self) }
}

/// A chat body with a long shared system prompt, like `kvroute validate` sends.
public func longChatBody(systemWords: Int = 180, user: String = "Summarise the plan.", maxTokens: Int = 8, stream: Bool = false, model: String = "meta-llama/Llama-3.2-3B-Instruct") -> [String: Any] {
    let system = String(repeating: "You are a senior consultant who writes careful plans. ", count: max(1, systemWords / 9))
    var b: [String: Any] = [
        "model": model, "max_tokens": maxTokens, "temperature": 0,
        "messages": [["role": "system", "content": system], ["role": "user", "content": user]],
    ]
    if stream { b["stream"] = true; b["stream_options"] = ["include_usage": true] }
    return b
}
