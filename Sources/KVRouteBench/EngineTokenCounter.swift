import AsyncHTTPClient
import Foundation
import KVRouteCore
import NIOCore

/// Counts a live run's prompts and answers in the engines' own tokens, by asking the engines'
/// vLLM `POST /tokenize`: a chat prompt through their chat template, a completion prompt with
/// their BOS, an answer as plain text. A workload renders its requests with the compact
/// 4-byte tokenizer, but live engines count differently (`kvroute sim` serves Llama-3's BPE
/// and its chat template by default, as vLLM does), and the hit-rate bounds only mean
/// something on the blocks the engines actually hash. Asking the engines, after the run and
/// outside its timing, fits whatever tokenizer and template they were started with.
struct EngineTokenCounter: Sendable {
    /// What to count.
    enum Item: Sendable {
        case prompt(PromptContent)
        case answer(String)
    }

    var engineURLs: [String]
    var model: String
    var client: HTTPClient
    /// Requests in flight at once (spread over the engines in turn).
    var parallelism = 4

    /// Each item's tokens, in order; nil when an engine could not tokenize one (an engine
    /// without `/tokenize`, or one that failed): the caller then keeps its own counts.
    func tokens(of items: [Item]) async -> [[UInt32]]? {
        guard !engineURLs.isEmpty else { return nil }
        let next = IDSource(start: -1)
        let results = LockedTokens(count: items.count)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<max(1, min(parallelism, items.count)) {
                group.addTask {
                    while true {
                        let i = next.next()
                        guard i < items.count, !results.failed else { return }
                        let engine = engineURLs[i % engineURLs.count]
                        if let t = await tokenize(items[i], engine: engine) { results.set(i, t) } else { results.fail() }
                    }
                }
            }
        }
        return results.all
    }

    /// One `/tokenize` call.
    func tokenize(_ item: Item, engine: String) async -> [UInt32]? {
        var body: [String: Any] = ["model": model]
        switch item {
        case .prompt(.messages(let msgs)): body["messages"] = msgs.map { ["role": $0.role, "content": $0.content] }
        case .prompt(.text(let t)): body["prompt"] = t
        case .prompt(.none): return []
        case .answer(let t):
            guard !t.isEmpty else { return [] }
            body["prompt"] = t
            body["add_special_tokens"] = false
        }
        var req = HTTPClientRequest(url: engine + "/tokenize")
        req.method = .POST
        req.headers.add(name: "content-type", value: "application/json")
        req.body = .bytes(ByteBuffer(bytes: Array((try? JSONSerialization.data(withJSONObject: body)) ?? Data())))
        guard let res = try? await client.execute(req, timeout: .seconds(60)), res.status == .ok,
              let buf = try? await res.body.collect(upTo: 64 << 20),
              let json = (try? JSONSerialization.jsonObject(with: Data(buf.readableBytesView))) as? [String: Any],
              let tokens = json["tokens"] as? [Int] else { return nil }
        return tokens.map { UInt32(truncatingIfNeeded: $0) }
    }
}

/// Tokens gathered by concurrent `/tokenize` calls, and whether one failed.
final class LockedTokens: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [[UInt32]]
    private var didFail = false

    init(count: Int) { items = Array(repeating: [], count: count) }
    func set(_ i: Int, _ t: [UInt32]) { lock.lock(); items[i] = t; lock.unlock() }
    func fail() { lock.lock(); didFail = true; lock.unlock() }
    var failed: Bool { lock.lock(); defer { lock.unlock() }; return didFail }
    var all: [[UInt32]]? { lock.lock(); defer { lock.unlock() }; return didFail ? nil : items }
}
