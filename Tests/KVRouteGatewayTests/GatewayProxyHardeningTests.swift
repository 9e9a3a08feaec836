import AsyncHTTPClient
import Foundation
import KVRouteCore
import KVRouteDataLayer
import KVRouteGateway
import KVRouteTestSupport
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// Runs `body` against a gateway with this configuration (its port is ignored: a free one).
func withTestGateway<T: Sendable>(_ configuration: GatewayConfiguration, _ body: @Sendable (Gateway, String) async throws -> T) async throws -> T {
    var c = configuration
    c.host = "127.0.0.1"
    c.port = 0
    let gateway = try Gateway(configuration: c, logger: quietLogger)
    await gateway.warmUp()
    return try await withServices(gateway.services) {
        let port = await gateway.waitUntilListening()
        return try await body(gateway, "http://127.0.0.1:\(port)")
    }
}

/// A configuration for fake engines: round-robin, slow background probes unless asked.
func fakeConfiguration(_ engines: [FakeEngine], policy: EndpointPickerConfig = .roundRobin, probe: Duration = .milliseconds(250)) -> GatewayConfiguration {
    GatewayConfiguration(
        endpoints: [engines.map(\.url).joined(separator: ",")], pickerConfig: policy, scrapeInterval: probe, probeInterval: probe,
        upstreamTimeout: 30, upstreamIdleTimeout: .seconds(1), seed: 1)
}

var chat: [String: Any] { ["model": "m", "messages": [["role": "user", "content": "hello"]], "max_tokens": 4] }
var streamingChat: [String: Any] { ["model": "m", "messages": [["role": "user", "content": "hello"]], "max_tokens": 4, "stream": true] }

func post(_ url: String, _ object: [String: Any], headers: [(String, String)] = [], timeout: TimeAmount = .seconds(10)) async throws -> TestResponse {
    let data = try JSONSerialization.data(withJSONObject: object)
    return try await TestHTTP.request(url + "/v1/chat/completions", method: .POST, body: String(decoding: data, as: UTF8.self), headers: headers, timeout: timeout)
}

/// A raw TCP connection to the gateway that writes what it is told and notes when the
/// gateway closes it.
final class RawConnection: Sendable {
    let channel: any Channel
    private let received = Received()

    final class Received: Sendable {
        let text = Mutex("")
    }

    init(port: Int) async throws {
        let received = self.received
        channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(Collector(received)) }
            }
            .connect(host: "127.0.0.1", port: port).get()
    }

    var text: String { received.text.withLock { $0 } }

    func send(_ s: String) async throws { try await channel.writeAndFlush(ByteBuffer(string: s)) }

    /// Closes with a reset (SO_LINGER 0), like a client that died.
    func reset() async {
        _ = try? await (channel as? any SocketOptionProvider)?.setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
        try? await channel.close()
    }

    /// Whether the gateway closed the connection within `limit`.
    func closedByPeer(within limit: Duration) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if !channel.isActive { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return !channel.isActive
    }

    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received: Received
        init(_ received: Received) { self.received = received }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let b = unwrapInboundIn(data)
            received.text.withLock { $0 += String(buffer: b) }
        }
    }
}

@Suite("Gateway proxy hardening", .serialized)
struct GatewayProxyHardeningTests {
    // MARK: explanations and the dashboard belong to the operator

    @Test("no explanation without the operator's secret; only the exact secret gets one")
    func explanationNeedsSecret() async throws {
        try await withSimCluster(engines: 2) { _, urls in
            try await withTestGateway(GatewayConfiguration(endpoints: urls, seed: 1)) { _, gw in
                for value in ["1", "true"] {
                    let r = try await post(gw, chatBody(system: "s", user: "u"), headers: [("x-kvroute-explain", value)])
                    #expect(r.status == 200)
                    #expect(r.headers.first(name: "x-kvroute-decision") == nil, "explain: \(value) without a configured secret")
                }
                #expect(try await TestHTTP.request(gw + "/dashboard").status == 404)
                #expect(try await TestHTTP.request(gw + "/dashboard/data").status == 404)
            }
            let secret = "operator-secret-0123456789"
            try await withTestGateway(GatewayConfiguration(endpoints: urls, explainSecret: secret, seed: 1)) { _, gw in
                for wrong in ["1", "true", "operator-secret-012345678", secret + "x", ""] {
                    let r = try await post(gw, chatBody(system: "s", user: "u"), headers: [("x-kvroute-explain", wrong)])
                    #expect(r.headers.first(name: "x-kvroute-decision") == nil, "explain: \(wrong)")
                }
                let r = try await post(gw, chatBody(system: "s", user: "u"), headers: [("x-kvroute-explain", secret)])
                #expect(try #require(r.headers.first(name: "x-kvroute-decision")).contains("prefix"))
                #expect(try await TestHTTP.request(gw + "/dashboard").status == 404)
                #expect(try await TestHTTP.request(gw + "/dashboard/data?key=nope").status == 404)
                #expect(try await TestHTTP.request(gw + "/dashboard?key=\(secret)").status == 200)
                let data = try await TestHTTP.request(gw + "/dashboard/data?key=\(secret)")
                #expect(data.status == 200)
                #expect((data.json?["engines"] as? [Any])?.count == 2)
            }
        }
    }

    // MARK: silent engines and slow clients

    @Test("an engine that stalls after the head ends the request within the idle timeout", arguments: [true, false])
    func stalledEngine(stream: Bool) async throws {
        let engine = try await FakeEngine(.stallAfterHead(sse: stream))
        try await withTestGateway(fakeConfiguration([engine])) { gateway, gw in
            let started = ContinuousClock.now
            let r = try await post(gw, stream ? streamingChat : chat, timeout: .seconds(8))
            let took = ContinuousClock.now - started
            if stream {
                #expect(r.status == 200)
                #expect(r.body.contains("failed mid-stream"), "\(r.body)")
                #expect(r.body.hasSuffix("data: [DONE]\n\n"))
            } else {
                #expect(r.status == 504, "\(r.body)")
                #expect((r.json?["error"] as? [String: Any])?["message"] is String)
            }
            #expect(took < .seconds(5))
            #expect(gateway.pool.healthyCount == 1)
        }
    }

    @Test("an endless stream ends at the request's deadline")
    func endlessStream() async throws {
        let engine = try await FakeEngine(.trickle(every: .milliseconds(100)))
        var c = fakeConfiguration([engine])
        c.upstreamTimeout = 1.5
        try await withTestGateway(c) { _, gw in
            let r = try await post(gw, streamingChat, timeout: .seconds(8))
            #expect(r.status == 200)
            #expect(r.body.contains("deadline"), "\(r.body.suffix(300))")
            #expect(r.body.hasSuffix("data: [DONE]\n\n"))
        }
    }

    @Test("200 half-sent request heads are closed within the header timeout; idle connections too")
    func slowLoris() async throws {
        let engine = try await FakeEngine(.ok())
        var c = fakeConfiguration([engine])
        c.clientTimeouts = .init(idle: .seconds(1), head: .seconds(1), body: .seconds(1))
        try await withTestGateway(c) { _, gw in
            let port = Int(gw.split(separator: ":").last!)!
            var connections: [RawConnection] = []
            for _ in 0..<200 {
                let conn = try await RawConnection(port: port)
                try await conn.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
                connections.append(conn)
            }
            let idle = try await RawConnection(port: port)
            try await idle.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            var closed = 0
            for conn in connections where await conn.closedByPeer(within: .seconds(4)) { closed += 1 }
            #expect(closed == 200)
            #expect(await idle.closedByPeer(within: .seconds(3)))
            #expect(idle.text.hasPrefix("HTTP/1.1 200"))
            // The gateway still serves.
            #expect(try await post(gw, chat).status == 200)
        }
    }

    @Test("a request body that does not arrive in time gets 408 and the connection closes")
    func slowBody() async throws {
        let engine = try await FakeEngine(.ok())
        var c = fakeConfiguration([engine])
        c.clientTimeouts = .init(idle: .seconds(5), head: .seconds(5), body: .seconds(1))
        try await withTestGateway(c) { _, gw in
            let port = Int(gw.split(separator: ":").last!)!
            let conn = try await RawConnection(port: port)
            try await conn.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\":")
            #expect(await conn.closedByPeer(within: .seconds(4)))
            #expect(conn.text.hasPrefix("HTTP/1.1 408"), "\(conn.text)")
            #expect(engine.completions == 0)
        }
    }

    // MARK: retries only when safe

    @Test("an engine that drops the connection after reading the request is not retried: one 502")
    func droppedAfterRequest() async throws {
        let a = try await FakeEngine(.dropAfterRequest)
        let b = try await FakeEngine(.dropAfterRequest)
        try await withTestGateway(fakeConfiguration([a, b])) { gateway, gw in
            for i in 1...4 {
                let r = try await post(gw, chat)
                #expect(r.status == 502, "\(r.body)")
                #expect(a.completions + b.completions == i, "the request was sent once")
                #expect(!r.body.contains("127.0.0.1"), "\(r.body)")
            }
            #expect(gateway.pool.healthyCount == 2, "one failed request does not make an engine unhealthy")
        }
    }

    @Test("connection refused is retried on the next engine, without marking the endpoint unhealthy")
    func connectRefusedRetried() async throws {
        let a = try await FakeEngine(.ok())
        let b = try await FakeEngine(.ok())
        // Probes 3 s apart (the first at start): the pool still believes the stopped engine healthy.
        try await withTestGateway(fakeConfiguration([a, b], probe: .seconds(3))) { gateway, gw in
            await a.stop()
            for _ in 0..<4 {
                let r = try await post(gw, chat)
                #expect(r.status == 200, "\(r.body)")
                #expect(r.headers.first(name: "x-upstream-host") == b.address)
            }
            #expect(gateway.pool.healthyCount == 2, "health is the prober's")
        }
    }

    @Test("429 and 5xx before the first byte are retried on the next engine", arguments: [429, 503])
    func statusRetried(code: Int) async throws {
        let a = try await FakeEngine(.status(code))
        let b = try await FakeEngine(.ok())
        try await withTestGateway(fakeConfiguration([a, b])) { _, gw in
            for _ in 0..<4 {
                let r = try await post(gw, chat)
                #expect(r.status == 200, "\(r.body)")
                #expect(r.headers.first(name: "x-upstream-host") == b.address)
            }
            #expect(a.completions == 2)
        }
    }

    // MARK: answers cut short

    @Test("a non-streaming answer cut off mid-body becomes a prompt, clean 502")
    func truncatedAnswer() async throws {
        let engine = try await FakeEngine(.truncated(announced: 1000, sent: 10))
        try await withTestGateway(fakeConfiguration([engine])) { _, gw in
            let r = try await post(gw, chat, timeout: .seconds(5))
            #expect(r.status == 502, "\(r.body)")
            #expect((r.json?["error"] as? [String: Any])?["message"] is String, "\(r.body)")
            #expect(engine.completions == 1)
        }
    }

    @Test("error bodies name no engine address; every endpoint refusing gives one 502")
    func noAddressesInErrors() async throws {
        let ports = [freePort(), freePort()]
        var c = GatewayConfiguration(endpoints: [ports.map { "http://127.0.0.1:\($0)" }.joined(separator: ",")], pickerConfig: .roundRobin, seed: 1)
        try await withTestGateway(c) { _, gw in
            let r = try await post(gw, chat)
            #expect(r.status == 502, "\(r.body)")
            #expect((r.json?["error"] as? [String: Any])?["message"] is String)
            for p in ports { #expect(!r.body.contains(String(p)), "\(r.body)") }
            #expect(!r.body.contains("127.0.0.1"), "\(r.body)")
        }
    }

    // MARK: bookkeeping

    @Test("a client that leaves at any point leaves no request in flight", arguments: ["before the head", "before the stream", "mid-stream"])
    func inFlightAfterDisconnect(phase: String) async throws {
        let engine = try await FakeEngine(phase == "mid-stream" ? .trickle(every: .milliseconds(50)) : .ok(delay: .milliseconds(400)))
        try await withTestGateway(fakeConfiguration([engine], policy: .kvrouteDefault)) { gateway, gw in
            let scheduler = gateway.router.scheduler
            let endpoint = try #require(gateway.pool.members.first?.address)
            let port = Int(gw.split(separator: ":").last!)!
            for _ in 0..<5 {
                let body = String(decoding: try JSONSerialization.data(withJSONObject: phase == "before the head" ? chat : streamingChat), as: UTF8.self)
                let conn = try await RawConnection(port: port)
                try await conn.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
                if phase == "mid-stream" {
                    let until = ContinuousClock.now + .seconds(3)
                    while !conn.text.contains("data:") && ContinuousClock.now < until { try await Task.sleep(for: .milliseconds(20)) }
                    #expect(conn.text.contains("data:"))
                } else {
                    try await Task.sleep(for: .milliseconds(100))
                    #expect(scheduler.inFlight(endpoint) >= 1)
                }
                await conn.reset()
            }
            let until = ContinuousClock.now + .seconds(4)
            while scheduler.inFlight(endpoint) > 0 && ContinuousClock.now < until { try await Task.sleep(for: .milliseconds(50)) }
            #expect(scheduler.inFlight(endpoint) == 0)
        }
    }

    // MARK: many requests to one engine

    @Test("300 concurrent slow requests to one engine all succeed, and the engine stays healthy")
    func manyConcurrent() async throws {
        let engine = try await FakeEngine(.ok(delay: .milliseconds(1500)))
        var config = HTTPClient.Configuration()
        config.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 512)
        config.timeout = .init(connect: .seconds(30))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
        let body = String(decoding: try JSONSerialization.data(withJSONObject: chat), as: UTF8.self)
        defer { _ = Task { try? await client.shutdown() } }
        try await withTestGateway(fakeConfiguration([engine])) { gateway, gw in
            let flapped = Atomic<Bool>(false)
            let watch = Task {
                while !Task.isCancelled {
                    if gateway.pool.healthyCount == 0 { flapped.store(true, ordering: .relaxed) }
                    try? await Task.sleep(for: .milliseconds(20))
                }
            }
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<300 {
                    group.addTask {
                        var req = HTTPClientRequest(url: gw + "/v1/chat/completions")
                        req.method = .POST
                        req.headers.add(name: "content-type", value: "application/json")
                        req.body = .bytes(ByteBuffer(string: body))
                        let res = try await client.execute(req, timeout: .seconds(60))
                        _ = try await res.body.collect(upTo: 1 << 20)
                        return Int(res.status.code)
                    }
                }
                return try await group.reduce(into: [Int: Int]()) { $0[$1, default: 0] += 1 }
            }
            watch.cancel()
            #expect(statuses == [200: 300], "\(statuses)")
            let left = flapped.load(ordering: .relaxed)
            #expect(!left, "the engine never left the candidate set")
        }
    }
}
