import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// How each request of a load run was answered.
public struct LoadOutcome: Sendable, CustomStringConvertible {
    public var sent = 0
    /// 2xx with a complete, well-formed body (JSON, or SSE ending in `[DONE]`).
    public var ok = 0
    /// A 4xx/5xx status.
    public var errorStatus = 0
    /// 2xx SSE that carried an error event.
    public var sseError = 0
    /// 2xx whose body is malformed (an engine's garbage passed through).
    public var malformed = 0
    /// The connection failed or closed without a complete answer.
    public var cut = 0
    /// Of `cut`, the streaming requests (an SSE stream can always end with an error event).
    public var cutStreams = 0
    /// No answer within the client's deadline.
    public var hung = 0
    /// Answers by status.
    public var statuses: [Int: Int] = [:]
    /// The first few cut and hung requests, for the failure message.
    public var examples: [String] = []

    public init() {}

    /// Requests that got exactly one answer a client can act on.
    public var answered: Int { ok + errorStatus + sseError + malformed }

    public var description: String {
        "sent \(sent), answered \(answered) (ok \(ok), error status \(errorStatus) \(statuses.filter { $0.key >= 400 }.sorted { $0.key < $1.key }), "
            + "SSE error \(sseError), malformed \(malformed)), cut \(cut) (\(cutStreams) streams), hung \(hung)"
            + (examples.isEmpty ? "" : "; e.g. " + examples.prefix(4).joined(separator: " | "))
    }

    mutating func add(_ kind: Kind, status: Int?, detail: String?, stream: Bool) {
        if let status { statuses[status, default: 0] += 1 }
        switch kind {
        case .ok: ok += 1
        case .errorStatus: errorStatus += 1
        case .sseError: sseError += 1
        case .malformed: malformed += 1
        case .cut: cut += 1; if stream { cutStreams += 1 }
        case .hung: hung += 1
        }
        if let detail, examples.count < 8 { examples.append(detail) }
    }

    enum Kind { case ok, errorStatus, sseError, malformed, cut, hung }
}

/// Counts finished requests so a test can act (kill, restart) part-way through a run.
public final class LoadProgress: Sendable {
    private let done = Mutex(0)
    public init() {}
    public var completed: Int { done.withLock { $0 } }
    func tick() { done.withLock { $0 += 1 } }
    /// Returns once `n` requests have finished (or after `timeout` seconds).
    public func wait(for n: Int, timeout: Double = 60) async {
        let deadline = Date().addingTimeInterval(timeout)
        while completed < n && Date() < deadline { try? await Task.sleep(for: .milliseconds(10)) }
    }
}

/// A bounded load of chat completions — sessions sharing long prefixes, every other request
/// streamed — against one front door, each request classified by how it was answered.
public struct ChaosLoad: Sendable {
    public var url: String
    public var requests = 300
    public var concurrency = 12
    /// Well above the front door's own timeouts: reaching it means the request hung.
    public var deadline: Duration = .seconds(30)
    public var sessions = 24
    public var maxTokens = 24
    public var model = "meta-llama/Llama-3.2-3B-Instruct"

    public init(url: String, requests: Int = 300, concurrency: Int = 12) {
        self.url = url
        self.requests = requests
        self.concurrency = concurrency
    }

    public func run(progress: LoadProgress = LoadProgress()) async throws -> LoadOutcome {
        var config = HTTPClient.Configuration()
        config.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: concurrency * 2)
        config.timeout = .init(connect: .seconds(5))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
        let outcome = await withTaskGroup(of: (LoadOutcome.Kind, Int?, String?, Bool).self) { group in
            var outcome = LoadOutcome()
            var next = 0
            func launch() {
                let i = next
                next += 1
                outcome.sent += 1
                group.addTask {
                    let (kind, status, detail) = await self.one(i, client: client)
                    progress.tick()
                    return (kind, status, detail, i % 2 == 1)
                }
            }
            while next < min(concurrency, requests) { launch() }
            for await (kind, status, detail, stream) in group {
                outcome.add(kind, status: status, detail: detail, stream: stream)
                if next < requests { launch() }
            }
            return outcome
        }
        try await client.shutdown()
        return outcome
    }

    /// Request `i`'s body: odd ones stream.
    public func body(_ i: Int) -> [String: Any] {
        let session = i % sessions
        let system = String(repeating: "Session group \(session % 6) keeps these standing instructions for every answer. ", count: 30)
        var b: [String: Any] = [
            "model": model, "max_tokens": maxTokens, "temperature": 0,
            "messages": [["role": "system", "content": system], ["role": "user", "content": "question \(i) of session \(session)"]],
        ]
        if i % 2 == 1 { b["stream"] = true; b["stream_options"] = ["include_usage": true] }
        return b
    }

    func one(_ i: Int, client: HTTPClient) async -> (LoadOutcome.Kind, Int?, String?) {
        var req = HTTPClientRequest(url: url + "/v1/chat/completions")
        req.method = .POST
        req.headers.add(name: "content-type", value: "application/json")
        req.headers.add(name: "x-session-id", value: "chaos-\(i % sessions)")
        req.body = .bytes(ByteBuffer(bytes: (try? JSONSerialization.data(withJSONObject: body(i))) ?? Data()))
        let deadline = self.deadline, request = req
        let result: Result<(Int, HTTPHeaders, String), any Error>? = await withTaskGroup(of: Result<(Int, HTTPHeaders, String), any Error>?.self) { g in
            g.addTask {
                do {
                    let res = try await client.execute(request, timeout: .seconds(Int64(deadline.components.seconds)))
                    let data = try await res.body.collect(upTo: 16 << 20)
                    return .success((Int(res.status.code), res.headers, String(buffer: data)))
                } catch {
                    return .failure(error)
                }
            }
            g.addTask {
                try? await Task.sleep(for: deadline)
                return nil
            }
            let first = await g.next() ?? nil
            g.cancelAll()
            return first
        }
        guard let result else { return (.hung, nil, "request \(i) hung") }
        switch result {
        case .failure(let error):
            return (.cut, nil, "request \(i) (\(i % 2 == 1 ? "stream" : "json")): \(error)")
        case .success(let (status, headers, text)):
            return (Self.classify(status: status, headers: headers, body: text), status, nil)
        }
    }

    static func classify(status: Int, headers: HTTPHeaders, body: String) -> LoadOutcome.Kind {
        guard (200..<300).contains(status) else { return status >= 400 ? .errorStatus : .malformed }
        if headers.first(name: "content-type")?.lowercased().hasPrefix("text/event-stream") == true {
            var sawError = false, wellFormed = true, done = false
            for event in serverSentEvents(body) {
                let payload = event.data
                if payload == "[DONE]" { done = true; continue }
                guard let object = (try? JSONSerialization.jsonObject(with: Data(payload.utf8))) as? [String: Any] else { wellFormed = false; continue }
                if object["error"] != nil { sawError = true }
            }
            if sawError { return .sseError }
            return wellFormed && done ? .ok : .malformed
        }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any], object["choices"] != nil else { return .malformed }
        return .ok
    }
}

/// In-flight requests the gateway's routing core counts, summed over its endpoints (from
/// `/dashboard/data`, which the gateway serves only with its explain secret).
public func gatewayInFlight(_ gatewayURL: String, secret: String) async throws -> Int {
    let r = try await TestHTTP.request(gatewayURL + "/dashboard/data?key=" + secret, contentType: nil, timeout: .seconds(5))
    guard let engines = r.json?["engines"] as? [[String: Any]] else {
        throw ExternalTool.Missing(description: "no engines in /dashboard/data: \(r.status) \(r.body.prefix(300))")
    }
    return engines.reduce(0) { $0 + (($1["in_flight"] as? Int) ?? 0) }
}

/// Polls the gateway's in-flight count until it is zero; returns the last value seen.
public func waitForNoneInFlight(_ gatewayURL: String, secret: String, timeout: Double = 10) async -> Int {
    let deadline = Date().addingTimeInterval(timeout)
    var last = -1
    while Date() < deadline {
        last = (try? await gatewayInFlight(gatewayURL, secret: secret)) ?? -1
        if last == 0 { return 0 }
        try? await Task.sleep(for: .milliseconds(100))
    }
    return last
}

/// Polls a Prometheus page until `metric` (summed over series) is zero; returns the last
/// value seen (-1 when the page could not be read or does not carry the metric: a renamed
/// metric must not read as zero).
public func waitForMetricZero(_ metricsURL: String, _ metric: String, timeout: Double = 10) async -> Double {
    let deadline = Date().addingTimeInterval(timeout)
    var last = -1.0
    while Date() < deadline {
        if let page = try? await TestHTTP.request(metricsURL, contentType: nil, timeout: .seconds(5)), page.status == 200,
           page.body.split(separator: "\n").contains(where: { $0.hasPrefix(metric + " ") || $0.hasPrefix(metric + "{") }) {
            last = TestHTTP.metricSum(page.body, metric)
            if last == 0 { return 0 }
        }
        try? await Task.sleep(for: .milliseconds(100))
    }
    return last
}
