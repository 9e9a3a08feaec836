import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KVRouteCore
@testable import KVRouteGateway
import KVRouteTestSupport
import NIOCore
import Testing

/// The gateway's router driven in process (Hummingbird's router test framework: no client
/// socket, no server channel), in front of in-process engines.
@Suite("Gateway in process")
struct GatewayInProcessTests {
    /// A gateway over `endpoints`, warmed once (no scrape loops), its clients shut down after.
    static func withRouter<T: Sendable>(endpoints: [String], _ body: @Sendable (Gateway, any TestClientProtocol) async throws -> T) async throws -> T {
        let gateway = try Gateway(configuration: GatewayConfiguration(
            host: "127.0.0.1", port: 0, endpoints: endpoints, pickerConfig: .kvrouteDefault, seed: 1), logger: quietLogger)
        await gateway.warmUp()
        do {
            let result = try await gateway.makeApplication().test(.router) { client in try await body(gateway, client) }
            try await gateway.tracker.client.shutdown()
            try await gateway.tracker.proxyClient.shutdown()
            return result
        } catch {
            try? await gateway.tracker.client.shutdown()
            try? await gateway.tracker.proxyClient.shutdown()
            throw error
        }
    }

    static let json: HTTPFields = [.contentType: "application/json"]

    @Test("bad input gets OpenAI error JSON and the right status, before any engine is asked")
    func badInput() async throws {
        try await Self.withRouter(endpoints: ["http://127.0.0.1:1"]) { _, client in
            let cases: [(HTTPFields, String, Int)] = [
                (Self.json, "{not json", 400),
                (Self.json, #"{"messages":[]}"#, 400),
                (Self.json, #"{"model":"m","messages":3}"#, 400),
                ([.contentType: "text/plain"], #"{"model":"m","messages":[]}"#, 415),
            ]
            for (headers, body, status) in cases {
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: headers, body: ByteBuffer(string: body)) { r in
                    #expect(r.status.code == status, "\(body)")
                    let error = try JSONSerialization.jsonObject(with: Data(buffer: r.body)) as? [String: Any]
                    #expect((error?["error"] as? [String: Any])?["message"] is String, "\(body)")
                }
            }
        }
    }

    @Test("a chat completion reaches an engine, names it, and carries a session token")
    func routed() async throws {
        try await withSimCluster(engines: 2) { _, urls in
            try await Self.withRouter(endpoints: [urls.joined(separator: ",")]) { gateway, client in
                let body = #"{"model":"meta-llama/Llama-3.2-3B-Instruct","messages":[{"role":"user","content":"hello there"}],"max_tokens":4}"#
                var headers = Self.json
                headers[HTTPField.Name("x-session-id")!] = "in-process"
                headers[HTTPField.Name("x-gateway-destination-endpoint")!] = "10.9.9.9:1"
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: headers, body: ByteBuffer(string: body)) { r in
                    #expect(r.status == .ok)
                    let served = try #require(r.headers[Gateway.upstreamHostHeader])
                    #expect(urls.contains("http://" + served), "served by \(served)")
                    #expect(r.headers[Gateway.sessionTokenHeader] != nil)
                }
                #expect(gateway.router.scheduler.inFlightTotal == 0)
            }
        }
    }

    @Test("the dashboard answers 404 without the operator's secret")
    func dashboardHidden() async throws {
        try await Self.withRouter(endpoints: ["http://127.0.0.1:1"]) { _, client in
            try await client.execute(uri: "/dashboard", method: .get) { r in #expect(r.status == .notFound) }
        }
    }
}
