import Foundation
import KVRouteTestSupport
import Testing

/// A real peer decoding our KV events: PyPI `vllm-router --policy kv_aware`, its
/// `--kv-event-source` pointed at three `kvroute sim` processes, routes each prompt to the
/// engine whose events say it holds the prompt's blocks. vllm-router reads the events' token
/// ids and hashes, and learns a request's tokens from the engine's `/tokenize`; it reads only
/// the empty topic (vLLM's default), so the engines publish on it.
@Suite("vllm-router kv_aware in front of kvroute sim", .serialized)
struct VLLMRouterKVAwareTests {
    static let model = "m"

    struct Engine {
        let http = freePort(), events = freePort(), replay = freePort()
        let process: ManagedProcess
        init(_ i: Int) throws {
            let kv = #"{"enable_kv_cache_events":true,"publisher":"zmq","endpoint":"tcp://*:\#(events)","replay_endpoint":"tcp://*:\#(replay)"}"#
            process = try ManagedProcess(kvroute: [
                "sim", "--port", "\(http)", "--model", VLLMRouterKVAwareTests.model, "--tokenizer", "bytes4", "--hash-seed", "0",
                "--block-size", "16", "--time-scale", "0", "--log-level", "error", "--kv-events-config", kv,
            ], name: "kv-aware-sim-\(i)")
        }
        var url: String { "http://127.0.0.1:\(http)" }
    }

    /// A chat whose long system prompt is the topic's own (about 70 blocks of 16 tokens).
    static func chat(topic: Int, question: String) -> [String: Any] {
        let words = (0..<280).map { "topic\(topic)-word\($0 % 89)" }.joined(separator: " ")
        return ["model": model, "max_tokens": 2, "messages": [
            ["role": "system", "content": "Briefing \(topic). " + words], ["role": "user", "content": question],
        ]]
    }

    /// The highest KV event sequence number vllm-router's debug log says it applied for
    /// `engine` (-1 before the first).
    static func appliedSeq(_ log: String, engine: String) -> Int {
        var best = -1
        for line in plain(log).split(separator: "\n") where line.contains("live sequence advanced") && line.contains("source=\(engine) ") {
            if let r = line.range(of: "seq="), let n = Int(line[r.upperBound...].prefix { $0.isNumber }) { best = max(best, n) }
        }
        return best
    }

    /// The log without its ANSI colour codes (vllm-router writes them to files too).
    static func plain(_ log: String) -> String {
        log.replacingOccurrences(of: "\u{1B}\\[[0-9;]*m", with: "", options: .regularExpression)
    }

    /// Waits until vllm-router has applied a batch of `engine` past `seq`.
    static func waitApplied(_ router: ManagedProcess, engine: String, after seq: Int, deadline: ContinuousClock.Instant) async throws -> Int {
        while true {
            let s = appliedSeq(router.log, engine: engine)
            if s > seq { return s }
            try #require(router.isRunning, "vllm-router \(router.exitDescription): \(router.log.suffix(2_000))")
            try #require(ContinuousClock.now < deadline, "vllm-router applied no KV event of \(engine) past seq \(seq): \(router.log.suffix(2_000))")
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    @Test("each prompt goes to the engine whose KV events hold it", .enabled(if: ExternalTool.available("vllm-router")))
    func routesByEvents() async throws {
        let binary = try #require(ExternalTool.find("vllm-router"), "vllm-router is not installed: run scripts/install-test-tools.sh")
        let engines = try (0..<3).map { try Engine($0) }
        defer { for e in engines { e.process.stop() } }
        for e in engines { try await waitForOK(e.url + "/health", process: e.process) }
        let port = freePort()
        var args = ["--host", "127.0.0.1", "--port", "\(port)", "--worker-urls"] + engines.map(\.url)
        args += ["--policy", "kv_aware", "--prometheus-port", "\(freePort())", "--kv-event-block-size", "16", "--kv-event-model", Self.model]
        for e in engines {
            args += ["--kv-event-source", "\(e.url)=tcp://127.0.0.1:\(e.events)", "--kv-event-replay-source", "\(e.url)=tcp://127.0.0.1:\(e.replay)"]
        }
        // Debug logging: its "kv_index live sequence advanced" lines say which batches it applied.
        let router = try ManagedProcess(binary, args + ["--log-level", "debug"], name: "vllm-router-kv-aware")
        defer { router.stop() }
        try await waitForOK("http://127.0.0.1:\(port)/health", timeout: 30, process: router)
        let deadline = ContinuousClock.now + .seconds(40)

        // ZMQ drops what is published before a subscriber joins: prime each engine until its
        // batches reach the router, then start from empty caches.
        var seq: [Int] = []
        for (i, e) in engines.enumerated() {
            var n = 0
            while Self.appliedSeq(router.log, engine: e.url) < 0 {
                try #require(ContinuousClock.now < deadline, "no KV events of \(e.url) reached vllm-router: \(router.log.suffix(2_000))")
                #expect(try await TestHTTP.postJSON(e.url + "/v1/chat/completions", Self.chat(topic: 90 + i, question: "Prime \(n)?")).status == 200)
                n += 1
                try await Task.sleep(for: .milliseconds(200))
            }
            try await Task.sleep(for: .milliseconds(200))
            let before = Self.appliedSeq(router.log, engine: e.url)
            #expect(try await TestHTTP.request(e.url + "/reset_prefix_cache", method: .POST).status == 200)
            seq.append(try await Self.waitApplied(router, engine: e.url, after: before, deadline: deadline))
        }

        // Topic t warmed on engine (t + 1) % 3, sent straight to it; then the router has its events.
        var pods: [String] = []
        for t in 0..<3 {
            let e = (t + 1) % 3
            let warm = try await TestHTTP.postJSON(engines[e].url + "/v1/chat/completions", Self.chat(topic: t, question: "Warm up."))
            #expect(warm.status == 200)
            pods.append(try #require(warm.headers.first(name: "x-inference-pod"), "no x-inference-pod from \(engines[e].url)"))
            seq[e] = try await Self.waitApplied(router, engine: engines[e].url, after: seq[e], deadline: deadline)
        }

        // The same prompts with new questions, through the router: each to the engine holding it.
        for t in 0..<3 {
            let e = (t + 1) % 3
            for q in 0..<2 {
                let res = try await TestHTTP.postJSON("http://127.0.0.1:\(port)/v1/chat/completions", Self.chat(topic: t, question: "Question \(q) about it?"))
                #expect(res.status == 200, "\(res.body.prefix(300))")
                #expect(res.headers.first(name: "x-inference-pod") == pods[t],
                        "topic \(t) is held by \(engines[e].url) (\(pods[t])) but went to \(res.headers.first(name: "x-inference-pod") ?? "?"): \(Self.plain(router.log).split(separator: "\n").filter { $0.contains("KV prefix decision") }.suffix(3))")
            }
        }
    }
}
