import Foundation
import KVRouteTestSupport
import Testing

/// Graceful drain of every server command, as real processes: a long stream in flight when
/// SIGTERM arrives finishes completely (every token, the usage chunk, `[DONE]`), the port
/// refuses new connections while it drains, and the process then exits 0.
@Suite("kvroute sim, gateway and epp drain on SIGTERM", .serialized)
struct DrainTests {
    static let exitBound: Duration = .seconds(10)
    /// About 1.8 s of decoding at the simulator's real-time step (≈ 4.5 ms a token): long
    /// enough to still run when the signal and the connection attempt come.
    static let tokens = 400

    /// Whether something accepts a TCP connection on the loopback port now.
    static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    /// The completion tokens the stream's usage chunk reports, and whether it ended with [DONE].
    static func streamed(_ body: String) -> (completionTokens: Int?, done: Bool, contentChunks: Int) {
        var tokens: Int?, chunks = 0
        for line in body.split(separator: "\n") where line.hasPrefix("data: {") {
            let object = (try? JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8))) as? [String: Any]
            if let usage = object?["usage"] as? [String: Any], let n = usage["completion_tokens"] as? Int { tokens = n }
            if let choices = object?["choices"] as? [[String: Any]], let delta = choices.first?["delta"] as? [String: Any],
               let content = delta["content"] as? String, !content.isEmpty { chunks += 1 }
        }
        return (tokens, body.hasSuffix("data: [DONE]\n\n"), chunks)
    }

    /// Starts the stream through `url`, sends SIGTERM to `process` while it runs, checks that
    /// `port` refuses connections during the drain, and that the stream and the process end well.
    /// - Parameter holdsStream: whether the process itself carries the stream (not so for
    ///   the picker when Envoy stops telling it about a response after its headers).
    static func drain(_ process: KVRouteProcess, port: Int, streamURL url: String, holdsStream: Bool = true) async throws {
        let body = longChatBody(maxTokens: tokens, stream: true)
        async let reply = TestHTTP.postJSON(url + "/v1/chat/completions", body, headers: [("x-session-id", "drain")])
        try await Task.sleep(for: .milliseconds(250))
        process.signal(SIGTERM)
        // While the stream still runs the listener is closed (polled: the signal is handled
        // asynchronously), and the process has not exited.
        var refused = false
        for _ in 0..<40 where !refused {
            try await Task.sleep(for: .milliseconds(10))
            refused = !accepts(port)
        }
        #expect(refused, "port \(port) still accepts connections 400 ms after SIGTERM")
        if holdsStream { #expect(process.process.isRunning, "exited before its stream finished: \(process.output)") }
        let r = try await reply
        let s = streamed(r.body)
        #expect(r.status == 200)
        #expect(s.done && s.completionTokens == tokens, "the stream finishes whole: \(s), \(r.body.suffix(300))")
        #expect(s.contentChunks >= tokens / 2, "the tokens arrived as content: \(s)")
        #expect(try await process.exitStatus(within: exitBound) == 0, "\(process.output)")
        #expect(!accepts(port))
    }

    static func engine() async throws -> (KVRouteProcess, Int) {
        let port = freePort()
        let p = try KVRouteProcess(["sim", "--enable-prompt-tokens-details", "--port", "\(port)", "--time-scale", "1", "--hash-seed", "0", "--log-level", "error"])
        try await waitForPort(port)
        return (p, port)
    }

    @Test("kvroute sim: a long stream in flight at SIGTERM finishes whole, new connections are refused, exit 0")
    func sim() async throws {
        let (engine, port) = try await Self.engine()
        defer { engine.stop() }
        try await Self.drain(engine, port: port, streamURL: "http://127.0.0.1:\(port)")
    }

    @Test("kvroute gateway: a long stream in flight at SIGTERM finishes whole, new connections are refused, exit 0")
    func gateway() async throws {
        let (engine, enginePort) = try await Self.engine()
        defer { engine.stop() }
        let port = freePort()
        let gateway = try KVRouteProcess(["gateway", "--port", "\(port)", "--endpoints", "http://127.0.0.1:\(enginePort)", "--log-level", "error"])
        defer { gateway.stop() }
        try await waitForOK("http://127.0.0.1:\(port)/health")
        try await Self.drain(gateway, port: port, streamURL: "http://127.0.0.1:\(port)")
        #expect(engine.process.isRunning, "the engine is not affected")
    }

    /// With the full-duplex configuration Envoy streams the response body through the
    /// picker, so its ext_proc stream lasts as long as the answer: the drain must keep it
    /// open. With the headers-only configuration the picker's part ends at the response
    /// headers; the stream must still finish and the picker exit 0.
    @Test("kvroute epp behind real Envoy: a long stream in flight at SIGTERM finishes whole, the gRPC port refuses, exit 0",
          .enabled(if: ExternalTool.available("envoy")), arguments: ["envoy-epp-full-duplex.yaml", "envoy-epp.yaml"])
    func epp(config: String) async throws {
        let (engine, enginePort) = try await Self.engine()
        defer { engine.stop() }
        let grpc = freePort(), health = freePort(), metrics = freePort()
        let picker = try KVRouteProcess([
            "epp", "--host", "127.0.0.1", "--grpc-port", "\(grpc)", "--health-port", "\(health)", "--metrics-port", "\(metrics)",
            "--endpoints", "http://127.0.0.1:\(enginePort)", "--log-level", "error",
        ])
        defer { picker.stop() }
        for port in [grpc, health, metrics] { try await waitForPort(port) }
        let envoy = try ManagedEnvoy(config: config, eppPort: grpc, eppHealthPort: health, engines: ["http://127.0.0.1:\(enginePort)"])
        defer { envoy.stop() }
        try await envoy.waitReady()
        // The picker routes (its health check passes) before the drain starts.
        let first = try await TestHTTP.postJSON(envoy.url + "/v1/chat/completions", longChatBody(maxTokens: 2))
        #expect(first.status == 200)
        try await Self.drain(picker, port: grpc, streamURL: envoy.url, holdsStream: config.contains("full-duplex"))
        #expect(try await envoy.stat("cluster.picked_endpoint.upstream_rq_total") >= 2, "both requests took the picker's route")
    }
}
