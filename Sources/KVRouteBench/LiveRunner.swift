import AsyncHTTPClient
import Foundation
import KVRouteCore
import KVRouteDataLayer
import KVRouteEngineSim
import KVRouteSSE
import NIOCore

/// Sends a workload in real time through any OpenAI-compatible gateway (kvroute's, Envoy
/// with kvroute's picker, or a peer router) and measures what clients and engines see:
/// TTFT from the first streamed token, cached tokens from `usage`, and the engines' own
/// prefix-cache and request counters. Each answer is attributed to the engine named by
/// `x-upstream-host` (kvroute's gateway), else by `x-inference-pod` (the engine's own
/// header, matched by asking each engine once), else not at all: requests per engine then
/// come from the engines' `vllm:request_success_total` before and after. Decision time and
/// preemptions are not measured here (nil: "n/a" in the report). The hit-rate bounds are
/// computed on the engines' own tokens (``EngineTokenCounter``, after the run), so they hold
/// whichever tokenizer the engines serve.
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
                    await conversation(r, workload: workload, start: start, results: results, nextID: nextID)
                }
            }
            if !clientQueue.isEmpty {
                let queue = RequestQueue(clientQueue)
                for _ in 0..<(workload.concurrency ?? clientQueue.count) {
                    group.addTask {
                        while let r = queue.pop() {
                            await conversation(r, workload: workload, start: start, results: results, nextID: nextID)
                        }
                    }
                }
            }
        }
        let after = try await counters()
        let dq = after.queries - before.queries
        var all = results.all
        // Answers named only by pod: ask each engine its pod name once, then match.
        if all.contains(where: { $0.outcome?.engine == nil && $0.pod != nil }) {
            let names = await podNames()
            for i in all.indices where all[i].outcome?.engine == nil {
                if let pod = all[i].pod, let e = names.firstIndex(of: pod) { all[i].outcome?.engine = e }
            }
        }
        let outcomes = all.compactMap(\.outcome)
        var run = PolicyRun(policy: label, outcomes: outcomes, engines: max(1, engineURLs.count),
                            issued: await issued(all), rejected: all.filter { $0.outcome == nil }.count)
        if outcomes.contains(where: { $0.engine == nil }) {
            run.requestsPerEngine = zip(after.served, before.served).map { Int(($0 - $1).rounded()) }
        }
        return (run, dq > 0 ? (after.hits - before.hits) / dq : nil)
    }

    /// Each request's prompt and answer in the engines' tokens, in the order they finished;
    /// the workload's own tokens when the engines cannot tokenize.
    func issued(_ all: [LiveResult]) async -> [(tokens: [UInt32], answer: [UInt32])] {
        let items = all.flatMap { [EngineTokenCounter.Item.prompt($0.request.prompt), .answer($0.answerText)] }
        guard let counted = await EngineTokenCounter(engineURLs: engineURLs, model: model, client: client).tokens(of: items) else {
            return all.map { ($0.request.tokens, $0.answerWords) }
        }
        return all.indices.map { (counted[2 * $0], counted[2 * $0 + 1]) }
    }

    /// A client's requests: the first, then each follow-up after its delay (think time, a
    /// tool's run), until the workload has none or one fails.
    func conversation(_ first: BenchRequest, workload: any Workload, start: ContinuousClock.Instant, results: LiveResults, nextID: IDSource) async {
        var r = first
        while true {
            let result = await send(r, start: start)
            results.add(result)
            guard result.outcome != nil, var follow = workload.next(after: r, answer: result.answerWords, id: nextID.next()) else { return }
            if let delay = follow.arrival, delay > 0 { try? await Task.sleep(for: .nanoseconds(Int64(delay * 1e9))) }
            follow.arrival = nil
            r = follow
        }
    }

    /// Prefix-cache counters summed over the engines, and each engine's finished requests.
    func counters() async throws -> (queries: Double, hits: Double, served: [Double]) {
        var q = 0.0, h = 0.0
        var served: [Double] = []
        for u in engineURLs {
            let res = try await client.execute(HTTPClientRequest(url: u + "/metrics"), timeout: .seconds(10))
            let text = String(buffer: try await res.body.collect(upTo: 32 << 20))
            let m = EngineMetricsSnapshot.parse(text)
            q += m.prefixQueries
            h += m.prefixHits
            served.append(Self.requestSuccess(text))
        }
        return (q, h, served)
    }

    /// vLLM's `vllm:request_success_total`, summed over its label sets.
    static func requestSuccess(_ text: String) -> Double {
        var total = 0.0
        for line in text.split(separator: "\n") where line.hasPrefix("vllm:request_success_total") {
            if let v = line.split(separator: " ").last.flatMap({ Double($0) }) { total += v }
        }
        return total
    }

    /// Each engine's `x-inference-pod`, from one one-token request sent to it directly.
    func podNames() async -> [String?] {
        var names: [String?] = []
        for u in engineURLs {
            var req = HTTPClientRequest(url: u + "/v1/completions")
            req.method = .POST
            req.headers.add(name: "content-type", value: "application/json")
            req.body = .bytes(ByteBuffer(string: "{\"model\":\"\(model)\",\"prompt\":\"kvroute bench: which pod\",\"max_tokens\":1}"))
            let res = try? await client.execute(req, timeout: .seconds(10))
            names.append(res?.headers.first(name: "x-inference-pod"))
            _ = try? await res?.body.collect(upTo: 1 << 20)
        }
        return names
    }

    func engineIndex(_ upstream: String?) -> Int? {
        guard let upstream else { return nil }
        return engineURLs.firstIndex { $0.hasSuffix("//" + upstream) }
    }

    /// One streamed request; nil outcome when it failed. `pod` is the answer's
    /// `x-inference-pod`, for answers no upstream header names.
    func send(_ r: BenchRequest, start: ContinuousClock.Instant) async -> LiveResult {
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
            return LiveResult(request: r)
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
            guard res.status == .ok else {
                _ = try? await res.body.collect(upTo: 1 << 20)
                return LiveResult(request: r)
            }
            let upstream = res.headers.first(name: "x-upstream-host")
            let pod = res.headers.first(name: "x-inference-pod")
            var ttft: Double?
            var text = ""
            var usage: [String: Any]?
            var events = ServerSentEventParser()
            for try await chunk in res.body {
                for event in events.feed(chunk.readableBytesView) {
                    guard let json = try? JSONSerialization.jsonObject(with: Data(event.data.utf8)) as? [String: Any] else { continue }
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
            let outcome = RequestOutcome(
                id: r.id, engine: engineIndex(upstream), promptTokens: prompt, cachedTokens: cached, completionTokens: completion,
                arrival: seconds(sent - start), ttft: ttft ?? seconds(ContinuousClock.now - sent), finish: seconds(ContinuousClock.now - start),
                preemptions: nil, decisionSeconds: nil)
            return LiveResult(request: r, outcome: outcome, answerText: text, pod: outcome.engine == nil ? pod : nil)
        } catch {
            return LiveResult(request: r)
        }
    }
}

/// One live request: what was sent, its outcome (nil: failed), the answer's text and the pod
/// that answered when no upstream header named the engine.
struct LiveResult: Sendable {
    var request: BenchRequest
    var outcome: RequestOutcome?
    var answerText = ""
    var pod: String?

    /// The answer in the workload's 4-byte tokens: what a follow-up's history is built from
    /// (the simulated engines answer in 4-byte words, which these tokens decode back to).
    var answerWords: [UInt32] { ApproximateTokenizer().encode(answerText) }
}

final class LiveResults: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [LiveResult] = []
    func add(_ x: LiveResult) { lock.lock(); items.append(x); lock.unlock() }
    var all: [LiveResult] { lock.lock(); defer { lock.unlock() }; return items }
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
