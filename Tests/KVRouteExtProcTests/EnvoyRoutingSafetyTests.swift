import Foundation
import KVRouteTestSupport
import ServiceLifecycle
import Testing

extension EnvoyProcess.InternalPeers: CustomTestStringConvertible {
    var testDescription: String {
        switch self {
        case .asConfigured: "peers as configured"
        case .legacyDefault: "pre-1.36 internal peers"
        case .trusted: "RFC1918 and loopback trusted"
        }
    }
}

/// deploy/envoy's configurations behind real Envoy, against clients that name their own
/// upstream: with the picker down (fail-open, or fail-closed in full duplex), with the picker
/// up, and under the internal-peer rules of older Envoy builds. Also the picker's fallbacks:
/// a primary that refuses connections is retried on the next endpoint the picker named.
@Suite("deploy/envoy: clients never pick their upstream; failed primaries go to the picker's fallbacks",
       .serialized, .enabled(if: EnvoyProcess.binary != nil || ExternalTool.peersRequired))
struct EnvoyRoutingSafetyTests {
    static let configs = ["envoy-epp.yaml", "envoy-epp-full-duplex.yaml"]
    static let peers: [EnvoyProcess.InternalPeers] = [.asConfigured, .legacyDefault, .trusted]

    /// Ways a client names `target` as its upstream.
    static func forgeries(_ target: String) -> [(name: String, headers: [(String, String)])] {
        let h = "x-gateway-destination-endpoint"
        return [
            ("header", [(h, target)]),
            ("uppercase", [("X-Gateway-Destination-Endpoint", target)]),
            ("twice", [(h, target), (h, target)]),
            ("subset", [(h + "-subset", target)]),
            ("served", [(h + "-served", target)]),
            ("XFF 10.0.0.1", [(h, target), ("x-forwarded-for", "10.0.0.1")]),
            ("XFF 127.0.0.1", [(h, target), ("X-Forwarded-For", "127.0.0.1")]),
            ("XFF and x-envoy-internal", [(h, target), ("x-forwarded-for", "10.0.0.1"), ("x-envoy-internal", "true")]),
        ]
    }

    /// Two engines and a canary no request may reach, served around `body`. A port that
    /// another process took between `freePort()` and the bind starts everything over on new
    /// ports (at most three times).
    static func withServers<T: Sendable>(_ body: @Sendable (_ engines: [RecordingServer], _ canary: RecordingServer) async throws -> T) async throws -> T {
        for attempt in 1... {
            let engines = [RecordingServer("engine-a"), RecordingServer("engine-b")]
            let canary = RecordingServer("canary")
            let all = engines + [canary]
            do {
                return try await withServices(all.map { $0.application as any Service }) {
                    for s in all { try await waitForPort(s.port) }
                    return try await body(engines, canary)
                }
            } catch where attempt < 3 && "\(error)".contains("Address already in use") {
                continue
            }
        }
        fatalError("unreachable")
    }

    static func send(_ envoy: EnvoyProcess, _ name: String, _ headers: [(String, String)]) async throws -> TestResponse {
        try await TestHTTP.postJSON(envoy.url + "/v1/chat/completions", chat(system: "s", user: name), headers: headers + [("x-session-id", "forger")])
    }

    @Test("picker down: a forged destination never reaches the canary (fail-open: the ring hash serves; full duplex: an error)",
          arguments: configs, peers)
    func pickerDown(_ config: String, _ peers: EnvoyProcess.InternalPeers) async throws {
        try await Self.withServers { engines, canary in
            // Nothing listens on the picker's ports.
            let envoy = try EnvoyProcess(config: config, eppPort: freePort(), eppHealthPort: freePort(), engines: engines.map(\.url), internalPeers: peers)
            defer { envoy.stop() }
            try await envoy.waitReady()
            let failOpen = config == "envoy-epp.yaml"
            var servedBy: Set<String> = []
            for (name, headers) in Self.forgeries(canary.address) {
                let r = try await Self.send(envoy, name, headers)
                let by = r.headers.first(name: "x-served-by") ?? "-"
                #expect(by != "canary", "\(name): reached the canary")
                if failOpen {
                    #expect(r.status == 200 && by.hasPrefix("engine"), "\(name): \(r.status) \(by)")
                    servedBy.insert(by)
                } else {
                    #expect(r.status >= 500, "\(name): \(r.status) \(by)")
                }
            }
            #expect(canary.hits == 0)
            if failOpen {
                // Every forged request took the consistent-hash route, so the session stayed on one engine.
                #expect(servedBy.count == 1, "\(servedBy)")
                #expect(try await envoy.stat("cluster.engines_ring_hash.upstream_rq_total") == Double(Self.forgeries("").count))
                #expect(try await envoy.stat("cluster.picked_endpoint.upstream_rq_total") == 0)
            }
        }
    }

    @Test("picker up: a forged destination is ignored, the picker's choice serves", arguments: configs, peers)
    func pickerUp(_ config: String, _ peers: EnvoyProcess.InternalPeers) async throws {
        try await Self.withServers { engines, canary in
            let picker = FixedPicker(endpoints: [engines[1].address, engines[0].address])
            try await withServices(picker.services) {
                try await waitForPort(picker.grpcPort)
                let envoy = try EnvoyProcess(config: config, eppPort: picker.grpcPort, eppHealthPort: picker.healthPort, engines: engines.map(\.url), internalPeers: peers)
                defer { envoy.stop() }
                try await envoy.waitReady()
                for target in [canary.address, engines[0].address] {
                    for (name, headers) in Self.forgeries(target) {
                        let r = try await Self.send(envoy, name, headers)
                        #expect(r.status == 200 && r.headers.first(name: "x-served-by") == "engine-b",
                                "\(name) → \(target): \(r.status) \(r.headers.first(name: "x-served-by") ?? "-")")
                    }
                }
                #expect(canary.hits == 0)
                #expect(engines[0].hits == 0)
            }
        }
    }

    @Test("a primary that refuses connections is retried on the picker's fallback", arguments: configs)
    func deadPrimary(_ config: String) async throws {
        try await Self.withServers { engines, _ in
            // An engine of the pool that died: its port refuses connections.
            let dead = "127.0.0.1:\(freePort())"
            let picker = FixedPicker(endpoints: [dead, engines[1].address])
            try await withServices(picker.services) {
                try await waitForPort(picker.grpcPort)
                let envoy = try EnvoyProcess(config: config, eppPort: picker.grpcPort, eppHealthPort: picker.healthPort,
                                             engines: [dead] + engines.map(\.url))
                defer { envoy.stop() }
                try await envoy.waitReady()
                for i in 0..<4 {
                    let r = try await Self.send(envoy, "turn \(i)", [])
                    #expect(r.status == 200 && r.headers.first(name: "x-served-by") == "engine-b",
                            "\(r.status) \(r.headers.first(name: "x-served-by") ?? "-") \(r.body.prefix(200))")
                }
                #expect(engines[1].hits == 4)
                #expect(try await envoy.stat("cluster.picked_endpoint.upstream_rq_retry") >= 4)
            }
        }
    }

    @Test("a destination outside the engines is never connected to, even when the picker names it", arguments: configs)
    func strangerDestination(_ config: String) async throws {
        try await Self.withServers { engines, canary in
            let picker = FixedPicker(endpoints: [canary.address, engines[1].address])
            try await withServices(picker.services) {
                try await waitForPort(picker.grpcPort)
                let envoy = try EnvoyProcess(config: config, eppPort: picker.grpcPort, eppHealthPort: picker.healthPort, engines: engines.map(\.url))
                defer { envoy.stop() }
                try await envoy.waitReady()
                let r = try await Self.send(envoy, "stranger", [])
                #expect(r.status == 200 && r.headers.first(name: "x-served-by") == "engine-b", "\(r.status) \(r.headers.first(name: "x-served-by") ?? "-")")
                #expect(canary.hits == 0)
            }
        }
    }
}
