import Foundation
import KVRouteTestSupport
import Testing

/// Real processes on loopback: engines joining and leaving behind a DNS name, an engine
/// dying behind real Envoy and `kvroute epp`, and a session token sent back by the client.
///
/// The DNS name is resolved by the real getaddrinfo in the front door's process, through
/// nss_wrapper (NSS_WRAPPER_HOSTS: a hosts file for that process alone), so each engine is
/// its own loopback address (127.0.0.x) on one shared port, as pods behind a headless
/// Service are.
@Suite("Endpoint membership, dying engines and session tokens with real processes", .serialized)
struct MembershipTests {
    static let name = "engines.kvroute.test"
    static let nssWrapper = ["/usr/lib/x86_64-linux-gnu/libnss_wrapper.so", "/usr/lib/aarch64-linux-gnu/libnss_wrapper.so", "/usr/lib64/libnss_wrapper.so"]
        .first { FileManager.default.fileExists(atPath: $0) }

    /// A hosts file the front door reads through nss_wrapper; rewritten atomically.
    final class HostsFile: @unchecked Sendable {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kvroute-hosts-\(UUID().uuidString.prefix(8))")
        func write(_ addresses: [String]) throws {
            try addresses.map { "\($0) \(MembershipTests.name)\n" }.joined().write(to: url, atomically: true, encoding: .utf8)
        }
        deinit { try? FileManager.default.removeItem(at: url) }
    }

    static func environment(_ hosts: HostsFile) throws -> [String: String] {
        let library = try #require(nssWrapper, "libnss_wrapper.so is not installed; run scripts/install-test-tools.sh")
        return ["LD_PRELOAD": library, "NSS_WRAPPER_HOSTS": hosts.url.path]
    }

    /// `n` requests of distinct sessions through `url`; the engines (x-inference-pod) that
    /// answered, and the statuses that were not 200.
    static func spread(_ url: String, _ n: Int, tag: String) async throws -> (pods: Set<String>, failures: [Int]) {
        var pods: Set<String> = [], failures: [Int] = []
        for i in 0..<n {
            let r = try await TestHTTP.postJSON(url + "/v1/chat/completions", longChatBody(user: "\(tag) \(i)", maxTokens: 2),
                                                headers: [("x-session-id", "\(tag)-\(i)")])
            if r.status == 200, let pod = r.headers.first(name: "x-inference-pod") { pods.insert(pod) } else { failures.append(r.status) }
        }
        return (pods, failures)
    }

    /// The engines the gateway routes over now (its /dashboard/data), healthy ones only.
    static func members(_ stack: ProcessStack) async throws -> Set<String> {
        let r = try await TestHTTP.request(stack.gatewayURL + "/dashboard/data?key=" + ProcessStack.explainSecret, contentType: nil)
        let engines = try #require(r.json?["engines"] as? [[String: Any]], "\(r.status) \(r.body.prefix(300))")
        return Set(engines.filter { $0["healthy"] as? Bool == true }.compactMap { $0["address"] as? String })
    }

    /// Polls the gateway's membership until it is `expected` (up to `timeout` seconds); the last seen.
    static func waitForMembers(_ stack: ProcessStack, _ expected: Set<String>, timeout: Double = 10) async throws -> Set<String> {
        let deadline = Date().addingTimeInterval(timeout)
        var seen: Set<String> = []
        while Date() < deadline {
            seen = try await members(stack)
            if seen == expected { return seen }
            try await Task.sleep(for: .milliseconds(200))
        }
        return seen
    }

    /// A chat body whose ~800-token prompt no other request shares (beyond the chat
    /// template's first block): the prefix signal is weak, so a session token decides.
    static func uniqueBody(maxTokens: Int = 2, stream: Bool = false) -> [String: Any] {
        let words = (0..<30).map { _ in UUID().uuidString }.joined(separator: " ")
        var body = longChatBody(systemWords: 9, user: words, maxTokens: maxTokens, stream: stream)
        body["messages"] = [["role": "user", "content": words]]
        return body
    }

    /// The pod that answers a request carrying the session token of `address` (base64 of
    /// `ip:port`, what the gateway sends back).
    static func podAnswering(token address: String, through url: String) async throws -> String? {
        let token = Data(address.utf8).base64EncodedString()
        let r = try await TestHTTP.postJSON(url + "/v1/chat/completions", uniqueBody(), headers: [("x-session-token", token)])
        return r.status == 200 ? r.headers.first(name: "x-inference-pod") : nil
    }

    @Test("kvroute gateway on a DNS name: a new engine behind the name is picked up; a rollout replacing every engine keeps serving",
          .timeLimit(.minutes(2)))
    func membershipFollowsDNS() async throws {
        let hosts = HostsFile()
        let port = freePort()
        let stack = try ProcessStack(engines: 0) { _ in ["--time-scale", "0.05"] }
        defer { stack.stop() }
        try stack.addEngine(host: "127.0.0.2", port: port)
        try await stack.waitEngines()
        try hosts.write(["127.0.0.2"])
        try await stack.startGateway(extra: ["--discovery-interval-s", "1"], endpoints: "http://\(Self.name):\(port)", environment: try Self.environment(hosts))

        // One engine behind the name: it serves everything.
        let first = try await Self.spread(stack.gatewayURL, 6, tag: "one")
        #expect(first.failures.isEmpty && first.pods == ["chaos-0"], "\(first)")

        // A second engine joins the name: within a few re-resolutions the gateway routes
        // over both, and a session whose token names the new engine is served there.
        try stack.addEngine(host: "127.0.0.3", port: port)
        try await stack.waitEngines([1])
        try hosts.write(["127.0.0.2", "127.0.0.3"])
        let grown = try await Self.waitForMembers(stack, ["127.0.0.2:\(port)", "127.0.0.3:\(port)"])
        #expect(grown == ["127.0.0.2:\(port)", "127.0.0.3:\(port)"], "the new engine was not picked up: \(grown)")
        #expect(try await Self.podAnswering(token: "127.0.0.3:\(port)", through: stack.gatewayURL) == "chaos-1")

        // A rollout: two new engines join, the name moves to them, the old ones stop. Load
        // runs throughout; every request is answered, and served.
        let progress = LoadProgress()
        async let outcome = ChaosLoad(url: stack.gatewayURL, requests: 120, concurrency: 6).run(progress: progress)
        await progress.wait(for: 20)
        try stack.addEngine(host: "127.0.0.4", port: port)
        try stack.addEngine(host: "127.0.0.5", port: port)
        try await stack.waitEngines([2, 3])
        try hosts.write(["127.0.0.4", "127.0.0.5"])
        // The old engines leave the name first and stop only after the gateway re-resolved
        // (as Kubernetes removes a terminating pod from the Service before it stops).
        try await Task.sleep(for: .seconds(2.5))
        stack.engines[0].stop()
        stack.engines[1].stop()
        let o = try await outcome
        print("rollout: \(o)")
        #expect(o.hung == 0 && o.cut == 0 && o.answered == o.sent, "\(o)")
        #expect(o.ok == o.sent, "every request served through the rollout: \(o)")
        let after = try await Self.waitForMembers(stack, ["127.0.0.4:\(port)", "127.0.0.5:\(port)"])
        #expect(after == ["127.0.0.4:\(port)", "127.0.0.5:\(port)"], "after the rollout the gateway routes over the new engines only: \(after)")
        let served = try await Self.spread(stack.gatewayURL, 6, tag: "after")
        #expect(served.failures.isEmpty && !served.pods.isEmpty && served.pods.isSubset(of: ["chaos-2", "chaos-3"]), "\(served)")
        #expect(try await Self.podAnswering(token: "127.0.0.5:\(port)", through: stack.gatewayURL) == "chaos-3")
        #expect(stack.deadProcesses.isEmpty, "\(stack.deadProcesses)")
    }

    @Test("kvroute epp on a DNS name: an engine joining the name becomes ready in the picker, one leaving it goes",
          .timeLimit(.minutes(1)))
    func pickerMembershipFollowsDNS() async throws {
        let hosts = HostsFile()
        let port = freePort()
        let stack = try ProcessStack(engines: 0) { _ in ["--time-scale", "0.05"] }
        defer { stack.stop() }
        try stack.addEngine(host: "127.0.0.2", port: port)
        try stack.addEngine(host: "127.0.0.3", port: port)
        try await stack.waitEngines()
        try hosts.write(["127.0.0.2"])
        try await stack.startPicker(extra: ["--discovery-interval-s", "1"], endpoints: "http://\(Self.name):\(port)", environment: try Self.environment(hosts))
        let metrics = "http://127.0.0.1:\(stack.pickerPorts.metrics)/metrics"
        func ready(_ expected: Double) async throws -> Double {
            var last = -1.0
            for _ in 0..<50 {
                let page = try await TestHTTP.request(metrics, contentType: nil).body
                #expect(page.contains("inference_pool_ready_pods"), "the picker exports its ready count")
                last = TestHTTP.metricSum(page, "inference_pool_ready_pods")
                if last == expected { return last }
                try await Task.sleep(for: .milliseconds(200))
            }
            return last
        }
        #expect(try await ready(1) == 1)
        try hosts.write(["127.0.0.2", "127.0.0.3"])
        #expect(try await ready(2) == 2, "the engine that joined the name is ready in the picker")
        try hosts.write(["127.0.0.3"])
        #expect(try await ready(1) == 1, "the engine that left the name is gone")
        #expect(stack.deadProcesses.isEmpty, "\(stack.deadProcesses)")
    }

    @Test("an engine killed behind real Envoy and kvroute epp: every request answered exactly once, the rest routed to the living",
          .enabled(if: ExternalTool.available("envoy")), .timeLimit(.minutes(2)))
    func engineDiesBehindEnvoy() async throws {
        let stack = try ProcessStack(engines: 3)
        defer { stack.stop() }
        try await stack.waitEngines()
        try await stack.startPickerBehindEnvoy()
        let envoy = try #require(stack.envoy)
        let load = ChaosLoad(url: envoy.url, requests: 150, concurrency: 9)
        let progress = LoadProgress()
        async let outcome = load.run(progress: progress)
        await progress.wait(for: 50)
        stack.engines[0].kill()
        let o = try await outcome
        print("engine killed behind Envoy: \(o)")
        // One answer each: none hangs; a stream whose head Envoy had already passed on can
        // only end cut when its engine dies (Envoy has no error event to add), and nothing
        // else is cut.
        #expect(o.hung == 0, "\(o)")
        #expect(o.cut == o.cutStreams, "only streams already under way end cut: \(o)")
        #expect(o.answered + o.cut == o.sent, "\(o)")
        // Only requests the dying engine had already started may fail: at most the 9 in
        // flight when it died. The rest go to the living engines (retries, fallbacks).
        #expect(o.ok >= o.sent - load.concurrency, "requests not yet on the dead engine go to the fallbacks: \(o)")
        // Afterwards the picker has dropped it: everything is served by the other two.
        let after = try await Self.spread(envoy.url, 12, tag: "after")
        #expect(after.failures.isEmpty, "\(after)")
        #expect(!after.pods.contains("chaos-0") && !after.pods.isEmpty, "\(after.pods)")
        #expect(stack.deadProcesses.isEmpty, "\(stack.deadProcesses)")
    }

    @Test("x-session-token sent back keeps a session on the engine that served it, whatever it asks next")
    func sessionTokenKeepsEngine() async throws {
        // Real-time engines, so three concurrent openings are in flight together and the
        // picker spreads them by load: tokens for several engines.
        let stack = try ProcessStack(engines: 3)
        defer { stack.stop() }
        try await stack.waitEngines()
        try await stack.startGateway()
        let url = stack.gatewayURL
        let openings = try await withThrowingTaskGroup(of: TestResponse.self) { group in
            for i in 0..<3 {
                group.addTask { try await TestHTTP.postJSON(url + "/v1/chat/completions", Self.uniqueBody(maxTokens: 100, stream: true)) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        var tokens: [String: String] = [:]  // pod → token
        for r in openings {
            try #require(r.status == 200, "\(r.body.prefix(300))")
            let pod = try #require(r.headers.first(name: "x-inference-pod"))
            let token = try #require(r.headers.first(name: "x-session-token"), "the gateway names the engine in x-session-token")
            let host = try #require(Data(base64Encoded: token).map { String(decoding: $0, as: UTF8.self) })
            #expect(host == r.headers.first(name: "x-upstream-host"), "the token is the serving engine's address")
            tokens[pod] = token
        }
        try #require(tokens.count >= 2, "the concurrent openings all went to \(tokens.keys)")
        // Follow-ups with prompts no engine has seen, one at a time, each sent back with a
        // token, at once: every one lands on the engine its token names, whatever the
        // gateway's load view still shows of the previous answer (the token outweighs a
        // request's worth of load; only saturation moves a session).
        for (pod, token) in tokens.sorted(by: { $0.key < $1.key }) {
            for turn in 0..<4 {
                let body = Self.uniqueBody()
                let r = try await TestHTTP.postJSON(url + "/v1/chat/completions", body, headers: [("x-session-token", token)])
                #expect(r.status == 200)
                #expect(r.headers.first(name: "x-inference-pod") == pod, "turn \(turn) with \(pod)'s token went to \(r.headers.first(name: "x-inference-pod") ?? "?")")
                #expect(r.headers.first(name: "x-session-token") == token, "the answer renews the same token")
            }
        }
    }
}
