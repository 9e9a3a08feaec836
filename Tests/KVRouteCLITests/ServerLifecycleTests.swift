import Foundation
import KVRouteTestSupport
import Testing

/// Every server command as a real process: a port it cannot take ends it at once with one line
/// naming the port; SIGTERM lets in-flight requests finish and exits 0; progress reaches a pipe
/// line by line. The bounds are correctness bounds (a hang fails), not performance claims.
@Suite("kvroute server commands: startup failures, signals, output", .serialized)
struct ServerLifecycleTests {
    static let exitBound: Duration = .seconds(10)

    /// Runs the command, expects it to fail within the bound, and returns its stderr lines
    /// that start with `kvroute COMMAND:`.
    func failure(_ arguments: [String], logLevel: String = "error") async throws -> [String] {
        let p = try KVRouteProcess(arguments + ["--log-level", logLevel])
        defer { p.stop() }
        let status = try await p.exitStatus(within: Self.exitBound)
        #expect(status != nil && status != 0, "exits non-zero within \(Self.exitBound)\n\(p.output)")
        for claim in ["engines listening", "gateway listening", "endpoint picker listening"] {
            #expect(!p.stderr.contains(claim), "never says it listens: \(p.stderr)")
        }
        return p.stderr.split(separator: "\n").map(String.init).filter { $0.hasPrefix("kvroute \(arguments[0]):") }
    }

    @Test("kvroute sim on a port in use exits non-zero with one line naming the port")
    func simBusyPort() async throws {
        let held = try HeldPort()
        let lines = try await failure(["sim", "--port", "\(held.port)", "--time-scale", "0"])
        #expect(lines == ["kvroute sim: engine 0: cannot listen on 127.0.0.1:\(held.port): address already in use"])
    }

    @Test("kvroute sim names the engine whose port is in use")
    func simSecondEngineBusy() async throws {
        let held = try HeldPort()
        let lines = try await failure(["sim", "--engines", "2", "--port", "\(held.port - 1)", "--time-scale", "0"])
        // Engine 0 takes port - 1 unless something else holds it: then it is named instead.
        #expect(lines.count == 1)
        #expect(lines.first == "kvroute sim: engine 1: cannot listen on 127.0.0.1:\(held.port): address already in use"
                || lines.first?.hasPrefix("kvroute sim: engine 0: cannot listen on 127.0.0.1:\(held.port - 1):") == true, "\(lines)")
    }

    @Test("kvroute gateway on a port in use exits non-zero with one line naming the port")
    func gatewayBusyPort() async throws {
        let held = try HeldPort()
        let lines = try await failure(["gateway", "--port", "\(held.port)", "--endpoints", "http://127.0.0.1:\(freePort())"])
        #expect(lines == ["kvroute gateway: cannot listen on 127.0.0.1:\(held.port): address already in use"])
    }

    @Test("kvroute epp with any of its three ports in use exits non-zero with one line naming it",
          arguments: [("--grpc-port", "ext_proc gRPC"), ("--health-port", "gRPC health"), ("--metrics-port", "metrics")])
    func eppBusyPort(flag: String, server: String) async throws {
        let held = try HeldPort()
        var ports = ["--grpc-port": freePort(), "--health-port": freePort(), "--metrics-port": freePort()]
        ports[flag] = held.port
        // At info level: it must not claim to listen before it does.
        let lines = try await failure(["epp", "--host", "127.0.0.1", "--endpoints", "http://127.0.0.1:\(freePort())"]
                                      + ports.flatMap { [$0.key, "\($0.value)"] }, logLevel: "info")
        #expect(lines == ["kvroute epp: \(server): cannot listen on 127.0.0.1:\(held.port): address already in use"])
    }

    @Test("kvroute demo with its gateway port in use exits non-zero naming the gateway")
    func demoBusyPort() async throws {
        let held = try HeldPort()
        let lines = try await failure(["demo", "--port", "\(held.port)", "--time-scale", "0.01"])
        #expect(lines == ["kvroute demo: gateway (default): cannot listen on 127.0.0.1:\(held.port): address already in use"])
    }

    @Test("kvroute sim: SIGTERM or SIGINT lets an in-flight completion finish, then exits 0", arguments: [SIGTERM, SIGINT])
    func simDrains(signal: Int32) async throws {
        let port = freePort()
        let p = try KVRouteProcess(["sim", "--port", "\(port)", "--time-scale", "1", "--hash-seed", "0", "--log-level", "error"])
        defer { p.stop() }
        try await waitForPort(port)
        // 60 output tokens at ≈ 4.5 ms a step: about 0.3 s of decoding, in flight when the signal comes.
        async let reply = TestHTTP.postJSON("http://127.0.0.1:\(port)/v1/chat/completions", longChatBody(maxTokens: 60, stream: true))
        try await Task.sleep(for: .milliseconds(100))
        p.signal(signal)
        let r = try await reply
        #expect(r.status == 200 && r.body.hasSuffix("data: [DONE]\n\n"), "the stream finishes: \(r.body.suffix(300))")
        #expect(try await p.exitStatus(within: Self.exitBound) == 0, "\(p.output)")
    }

    @Test("kvroute gateway: SIGTERM or SIGINT lets an in-flight completion finish, then exits 0", arguments: [SIGTERM, SIGINT])
    func gatewayDrains(signal: Int32) async throws {
        let enginePort = freePort(), port = freePort()
        let engine = try KVRouteProcess(["sim", "--enable-prompt-tokens-details", "--port", "\(enginePort)", "--time-scale", "1", "--hash-seed", "0", "--log-level", "error"])
        defer { engine.stop() }
        try await waitForPort(enginePort)
        let p = try KVRouteProcess(["gateway", "--port", "\(port)", "--endpoints", "http://127.0.0.1:\(enginePort)", "--log-level", "error"])
        defer { p.stop() }
        try await waitForPort(port)
        async let reply = TestHTTP.postJSON("http://127.0.0.1:\(port)/v1/chat/completions", longChatBody(maxTokens: 60, stream: true))
        try await Task.sleep(for: .milliseconds(100))
        p.signal(signal)
        let r = try await reply
        #expect(r.status == 200 && r.body.hasSuffix("data: [DONE]\n\n"), "the stream finishes: \(r.body.suffix(300))")
        #expect(try await p.exitStatus(within: Self.exitBound) == 0, "\(p.output)")
        engine.signal(SIGTERM)
        #expect(try await engine.exitStatus(within: Self.exitBound) == 0, "\(engine.output)")
    }

    @Test("kvroute epp: SIGTERM exits 0 once it listens on all three ports")
    func eppStops() async throws {
        let grpc = freePort(), health = freePort(), metrics = freePort()
        let p = try KVRouteProcess([
            "epp", "--host", "127.0.0.1", "--grpc-port", "\(grpc)", "--health-port", "\(health)", "--metrics-port", "\(metrics)",
            "--endpoints", "http://127.0.0.1:\(freePort())", "--log-level", "info",
        ])
        defer { p.stop() }
        for port in [grpc, health, metrics] { try await waitForPort(port) }
        let m = try await TestHTTP.request("http://127.0.0.1:\(metrics)/metrics")
        #expect(m.status == 200)
        p.signal(SIGTERM)
        #expect(try await p.exitStatus(within: Self.exitBound) == 0, "\(p.output)")
        #expect(p.stderr.contains("endpoint picker listening") && p.stderr.contains("127.0.0.1:\(grpc)"), "says it listens once it does: \(p.output)")
    }

    @Test("kvroute demo with stdout to a pipe: the dashboard URL arrives while it serves; SIGTERM exits 0")
    func demoOutputReachesPipe() async throws {
        let p = try KVRouteProcess(["demo", "--requests", "3", "--sleep-seconds", "0", "--time-scale", "0.01", "--log-level", "error"])
        defer { p.stop() }
        let line = try await p.line(containing: "dashboard", timeout: .seconds(60))
        #expect(line != nil, "the dashboard line arrives before the process exits\n\(p.output)")
        #expect(p.process.isRunning, "still serving")
        if let url = line?.split(separator: " ").last {
            let r = try await TestHTTP.request(String(url))
            #expect(r.status == 200)
        }
        p.signal(SIGTERM)
        #expect(try await p.exitStatus(within: Self.exitBound) == 0, "\(p.output)")
    }
}
