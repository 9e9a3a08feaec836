import Foundation
import KVRouteTestSupport
import Testing

/// `kvroute gateway --policy precise` as a process, following two `kvroute sim` processes'
/// KV events: a prompt one engine holds scores there and is routed there.
@Suite("kvroute gateway --policy precise", .serialized)
struct PreciseGatewayTests {
    static let secret = "precise-test-secret-0123"

    struct Engine {
        let http = freePort(), events = freePort()
        let process: KVRouteProcess
        init() throws {
            let kv = #"{"enable_kv_cache_events":true,"publisher":"zmq","endpoint":"tcp://*:\#(events)","topic":"kv@<pod>@<model>"}"#
            process = try KVRouteProcess([
                "sim", "--enable-prompt-tokens-details", "--port", "\(http)", "--model", "m", "--tokenizer", "bytes4", "--hash-seed", "0", "--block-size", "16",
                "--time-scale", "0", "--log-level", "error", "--kv-events-config", kv,
            ])
        }
        var url: String { "http://127.0.0.1:\(http)" }
        var address: String { "127.0.0.1:\(http)" }
    }

    static func chat(_ topic: Int, _ question: Int) -> [String: Any] {
        let words = (0..<130).map { "t\(topic)w\($0 % 97)" }.joined(separator: " ")
        return ["model": "m", "max_tokens": 4, "messages": [
            ["role": "system", "content": "Topic \(topic). " + words], ["role": "user", "content": "Question \(question)?"],
        ]]
    }

    /// A metric's value in a Prometheus text page (summed over its series).
    static func metric(_ page: String, _ name: String, _ filter: String = "") -> Double {
        page.split(separator: "\n").filter { $0.hasPrefix(name) && (filter.isEmpty || $0.contains(filter)) }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
    }

    /// Per endpoint, its total and precise scores in an x-kvroute-decision header.
    static func scores(_ header: String) -> [String: (total: Double, precise: Double)] {
        var out: [String: (Double, Double)] = [:]
        for part in header.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            guard let eq = part.firstIndex(of: "="), let bracket = part.firstIndex(of: "["), eq < bracket,
                  let total = Double(part[part.index(after: eq)..<bracket]),
                  let p = part.range(of: "precise-prefix-cache-scorer:") else { continue }
            let rest = part[p.upperBound...]
            out[String(part[..<eq])] = (total, Double(rest.prefix { $0 != "x" }) ?? -1)
        }
        return out
    }

    @Test("a prompt an engine served is scored and routed there once its events arrive")
    func routesByEvents() async throws {
        let a = try Engine(), b = try Engine()
        defer { a.process.stop(); b.process.stop() }
        for e in [a, b] { try await waitForPort(e.http) }
        let port = freePort()
        let gateway = try KVRouteProcess([
            "gateway", "--port", "\(port)", "--endpoints", "\(a.url),\(b.url)", "--policy", "precise", "--tokenizer", "bytes4",
            "--kv-events-endpoints", "tcp://127.0.0.1:\(a.events),tcp://127.0.0.1:\(b.events)",
            "--explain-secret", Self.secret, "--seed", "1", "--log-level", "error",
        ])
        defer { gateway.stop() }
        try await waitForPort(port)
        let metrics = "http://127.0.0.1:\(port)/metrics"
        // ZMQ drops what a subscriber not yet connected would see: warm up until each engine's
        // batches arrive, then start from empty caches.
        let deadline = ContinuousClock.now + .seconds(15)
        for (i, e) in [a, b].enumerated() {
            var q = 0
            while Self.metric(try await TestHTTP.request(metrics).body, "kvroute_kv_events_batches_total", e.address) == 0 {
                try #require(ContinuousClock.now < deadline, "no KV events from \(e.address) reached the gateway")
                _ = try await TestHTTP.postJSON(e.url + "/v1/chat/completions", Self.chat(90 + i, q))
                q += 1
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(try await TestHTTP.request(e.url + "/reset_prefix_cache", method: .POST).status == 200)
        }
        #expect(try await TestHTTP.postJSON(a.url + "/v1/chat/completions", Self.chat(1, 0)).status == 200)
        #expect(try await TestHTTP.postJSON(b.url + "/v1/chat/completions", Self.chat(2, 0)).status == 200)
        var held = 0.0
        for e in [a, b] {
            let blocks = try #require(try await TestHTTP.request(e.url + "/debug/kv_blocks").json?["hashes"] as? [Any])
            held += Double(blocks.count)
        }
        #expect(held >= 20)
        while Self.metric(try await TestHTTP.request(metrics).body, "kvroute_precise_index_blocks") != held {
            let page = try await TestHTTP.request(metrics).body
            try #require(ContinuousClock.now < deadline, "the gateway's index never held both prompts (\(held) blocks): \(page.split(separator: "\n").filter { $0.hasPrefix("kvroute_precise") || $0.hasPrefix("kvroute_kv_events") })")
            try await Task.sleep(for: .milliseconds(50))
        }
        for (topic, holder, other) in [(1, a, b), (2, b, a)] {
            let r = try await TestHTTP.postJSON("http://127.0.0.1:\(port)/v1/chat/completions", Self.chat(topic, 1), headers: [("x-kvroute-explain", Self.secret)])
            #expect(r.status == 200)
            let header = try #require(r.headers.first(name: "x-kvroute-decision"))
            let s = Self.scores(header)
            let h = try #require(s[holder.address], "\(header)"), o = try #require(s[other.address], "\(header)")
            #expect(h.precise >= 0.9 && o.precise == 0, "\(header)")
            #expect(h.total > o.total, "\(header)")
        }
        let page = try await TestHTTP.request(metrics).body
        #expect(Self.metric(page, "kvroute_precise_hashing_mismatch") == 0)
    }
}
