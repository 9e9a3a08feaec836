import AsyncHTTPClient
import Foundation
import KVRouteCore
import KVRouteDataLayer
import KVRouteEngineSim
import NIOCore

/// Sends a workload in real time through any OpenAI-compatible gateway (kvroute's, Envoy
/// with kvroute's picker, or a peer router) and measures what clients and engines see:
/// TTFT from the first streamed token, cached tokens from `usage`, the serving engine from
/// `x-upstream-host`, and the engines' own prefix-cache counters.
public struct LiveRunner: Sendable {
    public var gatewayURL: String
    /// Engine base URLs: their `/metrics` give the hit rate the engines saw.
    public var engineURLs: [String]
    public var model: String
    public var client: HTTPClient

    public init(gatewayURL: String, engineURLs: [String], model: String = "meta-llama/Llama-3.2-3B-Instruct", client: HTTPClient) {
        self.gatewayURL = gatewayURL.hasSuffix("/") ? String(gatewayURL.dropLast()) : gatewayURL
        self.engineURLs = engineURLs.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.model = model
        self.client = client
    }

    /// The run, and the hit rate from the engines' counters (Δhits / Δqueries).
    public func run(_ workload: any Workload, label: String) async throws -> (run: PolicyRun, engineHitRate: Double?) {
        let before = try await counters()
        let start = ContinuousClock.now
        let results = LiveResults()
        let initial = workload.initialRequests()
        let timed = initial.filter { $0.arrival != nil }
        let clientQueue = initial.filter { $0.arrival == nil }
        let nextID = IDSource(start: (initial.map(\.id).max() ?? 0) + 1)
        await withTaskGroup(of: Void.self) { group in
            for r in timed {
                group.addTask {
                    let wait = start + .nanoseconds(Int64(r.arrival! * 1e9)) - ContinuousClock.now
                    if wait > .zero { try? await Task.sleep(for: wait) }
                    results.add(await send(r, start: start))
                }
            }
            if !clientQueue.isEmpty {
                let queue = RequestQueue(clientQueue)
                for _ in 0..<(workload.concurrency ?? clientQueue.count) {
                    group.addTask {
                        while var r = queue.pop() {
                            while true {
                                let (outcome, answer, tokens) = await send(r, start: start)
                                results.add((outcome, answer, tokens))
                                guard outcome != nil, let follow = workload.next(after: r, answer: answer, id: nextID.next()) else { break }
                                r = follow
                            }
                        }
                    }
                }
            }
        }
        let after = try await counters()
        let dq = after.queries - before.queries
        let all = results.all
        let run = PolicyRun(policy: label, outcomes: all.compactMap(\.0), engines: max(1, engineURLs.count),
                            issued: all.map { ($0.2, $0.1) }, rejected: all.filter { $0.0 == nil }.count)
        return (run, dq > 0 ? (after.hits - before.hits) / dq : nil)
    }

    func counters() async throws -> (queries: Double, hits: Double) {
        var q = 0.0, h = 0.0
        for u in engineURLs {
            let res = try await client.execute(HTTPClientRequest(url: u + "/metrics"), timeout: .seconds(10))
            let m = EngineMetricsSnapshot.parse(String(buffer: try await res.body.collect(upTo: 32 << 20)))
            q += m.prefixQueries
            h += m.prefixHits
        }
        return (q, h)
    }

    func engineIndex(_ upstream: String?) -> Int {
        guard let upstream else { return 0 }
        return engineURLs.firstIndex { $0.hasSuffix("//" + upstream) } ?? 0
    }

    /// One streamed request; nil outcome when it failed.
    func send(_ r: BenchRequest, start: ContinuousClock.Instant) async -> (RequestOutcome?, [UInt32], [UInt32]) {
        var body: [String: Any] = ["model": model, "max_tokens": r.maxTokens, "temperature": 0, "stream": true, "stream_options": ["include_usage": true]]
        let path: String
        switch r.prompt {
        case .messages(let msgs):
            body["messages"] = msgs.map { ["role": $0.role, "content": $0.content] }
            path = "/v1/chat/completions"
        case .text(let t):
            body["prompt"] = t
            path = "/v1/completions"
        case .none:
            return (nil, [], r.tokens)
        }
        var req = HTTPClientRequest(url: gatewayURL + path)
        req.method = .POST
        req.headers.add(name: "content-type", value: "application/json")
        if let s = r.session { req.headers.add(name: "x-session-id", value: s) }
        req.body = .bytes(ByteBuffer(bytes: Array((try? JSONSerialization.data(withJSONObject: body)) ?? Data())))
        let sent = ContinuousClock.now
        func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }
        do {
            let res = try await client.execute(req, timeout: .seconds(600))
            guard res.status == .ok else { return (nil, [], r.tokens) }
            let upstream = res.headers.first(name: "x-upstream-host")
            var ttft: Double?
            var text = ""
            var usage: [String: Any]?
            var pending = ""
            for try await chunk in res.body {
                pending += String(buffer: chunk)
                while let range = pending.range(of: "\n\n") {
                    let event = pending[..<range.lowerBound]
                    pending = String(pending[range.upperBound...])
                    guard event.hasPrefix("data: "), let json = try? JSONSerialization.jsonObject(with: Data(event.dropFirst(6).utf8)) as? [String: Any] else { continue }
                    if let u = json["usage"] as? [String: Any] { usage = u }
                    if let choice = (json["choices"] as? [[String: Any]])?.first {
                        let piece = ((choice["delta"] as? [String: Any])?["content"] as? String) ?? (choice["text"] as? String) ?? ""
                        if !piece.isEmpty && ttft == nil { ttft = seconds(ContinuousClock.now - sent) }
                        text += piece
                    }
                }
            }
            let prompt = usage?["prompt_tokens"] as? Int ?? r.tokens.count
            let cached = (usage?["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int ?? 0
            let completion = usage?["completion_tokens"] as? Int ?? 0
            let answer = ApproximateTokenizer().encode(text)
            let outcome = RequestOutcome(
                id: r.id, engine: engineIndex(upstream), promptTokens: prompt, cachedTokens: cached, completionTokens: completion,
                arrival: seconds(sent - start), ttft: ttft ?? seconds(ContinuousClock.now - sent), finish: seconds(ContinuousClock.now - start),
                preemptions: 0, decisionSeconds: 0)
            return (outcome, answer, r.tokens)
        } catch {
            return (nil, [], r.tokens)
        }
    }
}

final class LiveResults: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [(RequestOutcome?, [UInt32], [UInt32])] = []
    func add(_ x: (RequestOutcome?, [UInt32], [UInt32])) { lock.lock(); items.append(x); lock.unlock() }
    var all: [(RequestOutcome?, [UInt32], [UInt32])] { lock.lock(); defer { lock.unlock() }; return items }
}

final class RequestQueue: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [BenchRequest]
    init(_ items: [BenchRequest]) { self.items = items }
    func pop() -> BenchRequest? { lock.lock(); defer { lock.unlock() }; return items.isEmpty ? nil : items.removeFirst() }
}

final class IDSource: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int
    init(start: Int) { value = start }
    func next() -> Int { lock.lock(); defer { lock.unlock() }; value += 1; return value }
}
