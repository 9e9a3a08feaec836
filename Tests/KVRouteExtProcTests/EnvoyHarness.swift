import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import KVRouteCore
import KVRouteExtProc
import KVRouteProto
import KVRouteTestSupport
import Logging

/// Real Envoy running one of deploy/envoy's configurations, filled in with test ports by
/// deploy/envoy/render.sh: the tested configuration is the shipped one.
/// KVROUTE_ENVOY_CONFIG_DIR renders the configurations from another folder instead (to show
/// a test fails on an older configuration).
final class EnvoyProcess: Sendable {
    /// Which downstream peers Envoy counts as internal (internal peers keep
    /// `internal_only_headers`).
    enum InternalPeers: Sendable {
        /// As the configuration says, with Envoy 1.40's default (no peer) where it says nothing.
        case asConfigured
        /// As an Envoy build before 1.36 runs it (the ones Istio releases pin): where the
        /// configuration sets no `internal_address_config`, RFC1918 and loopback peers are
        /// internal, and without `use_remote_address` the peer is the last X-Forwarded-For entry.
        case legacyDefault
        /// RFC1918 and loopback peers internal whatever the configuration says: what is left
        /// when that layer is misconfigured.
        case trusted

        static let legacyRanges = "{unix_sockets: true, cidr_ranges: [{address_prefix: 10.0.0.0, prefix_len: 8}, {address_prefix: 172.16.0.0, prefix_len: 12}, "
            + "{address_prefix: 192.168.0.0, prefix_len: 16}, {address_prefix: 127.0.0.0, prefix_len: 8}]}"

        func apply(to config: String) -> String {
            var lines = config.components(separatedBy: "\n")
            if self == .asConfigured { return config }
            if let i = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix("internal_address_config:") }) {
                guard self == .trusted else { return config }
                let indent = lines[i].prefix { $0 == " " }
                lines[i] = indent + "internal_address_config: " + Self.legacyRanges
            } else if let i = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == "stat_prefix: gateway" }) {
                let indent = lines[i].prefix { $0 == " " }
                lines.insert(indent + "internal_address_config: " + Self.legacyRanges, at: i + 1)
            }
            return lines.joined(separator: "\n")
        }
    }

    let listenPort = freePort()
    let adminPort = freePort()
    let process: BackgroundProcess
    var url: String { "http://127.0.0.1:\(listenPort)" }

    static var binary: String? { ExternalTool.find("envoy") }

    init(config: String, eppPort: Int, eppHealthPort: Int, engines: [String], requestBodyMode: String = "NONE", internalPeers: InternalPeers = .asConfigured) throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("kvroute-envoy-\(UUID().uuidString.prefix(8)).yaml")
        let rendered = try Self.render(config, listen: listenPort, admin: adminPort, epp: eppPort, eppHealth: eppHealthPort, engines: engines, mode: requestBodyMode)
        try internalPeers.apply(to: rendered).write(to: file, atomically: true, encoding: .utf8)
        process = try BackgroundProcess(try ExternalTool.require("envoy"), ["-c", file.path, "--disable-hot-restart", "--log-level", "warning", "--concurrency", "2"], name: "envoy")
    }

    static func render(_ config: String, listen: Int, admin: Int, epp: Int, eppHealth: Int, engines: [String], mode: String = "NONE") throws -> String {
        let root = ExternalTool.repositoryRoot
        let dir = ProcessInfo.processInfo.environment["KVROUTE_ENVOY_CONFIG_DIR"].map { URL(fileURLWithPath: $0) }
            ?? root.appendingPathComponent("deploy/envoy")
        let r = try ExternalTool.run(root.appendingPathComponent("deploy/envoy/render.sh").path, [
            dir.appendingPathComponent(config).path, "\(listen)", "\(admin)", "127.0.0.1:\(epp)", "\(eppHealth)",
            engines.joined(separator: ","), mode,
        ])
        guard r.status == 0 else { throw ExternalTool.Missing(description: "render.sh failed: \(r.stderr)") }
        return r.stdout
    }

    func waitReady() async throws {
        for _ in 0..<200 {
            if let r = try? await TestHTTP.request("http://127.0.0.1:\(adminPort)/ready", contentType: nil), r.status == 200 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ExternalTool.Missing(description: "envoy did not become ready: \(process.log.suffix(2000))")
    }

    /// One counter or gauge from Envoy's admin stats; throws when Envoy does not report it.
    func stat(_ name: String) async throws -> Double {
        try await ManagedEnvoy.stat(name, adminPort: adminPort)
    }

    /// Envoy drains for a long while on SIGTERM (its ext_proc streams stay open); tests want
    /// it gone now.
    func stop() {
        let p = process.process
        guard p.isRunning else { return }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    deinit { stop() }
}

/// gRPC health Check for each service name.
func healthStatuses(port: Int, services: [String]) async throws -> [String: Grpc_Health_V1_HealthCheckResponse.ServingStatus] {
    try await withGRPCClient(transport: try .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)) { client in
        let health = Grpc_Health_V1_Health.Client(wrapping: client)
        var out: [String: Grpc_Health_V1_HealthCheckResponse.ServingStatus] = [:]
        for service in services {
            var req = Grpc_Health_V1_HealthCheckRequest()
            req.service = service
            out[service] = try await health.check(req).status
        }
        return out
    }
}

/// The kvroute binary next to the test bundle (`swift build` puts both in one folder).
var kvrouteBinary: String? {
    let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    let candidates = [dir.appendingPathComponent("kvroute").path] + [".build", ".build-epp"].map {
        ExternalTool.repositoryRoot.appendingPathComponent("\($0)/debug/kvroute").path
    }
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
}

func chat(system: String, user: String, maxTokens: Int = 8) -> [String: Any] {
    ["model": "meta-llama/Llama-3.2-3B-Instruct", "max_tokens": maxTokens, "temperature": 0,
     "messages": [["role": "system", "content": system], ["role": "user", "content": user]]]
}

/// About `tokens` tokens of instructions shared by one group of sessions.
func sharedPrefix(_ group: Int, tokens: Int) -> String {
    let unit = "Group \(group) shares these standing instructions for every answer it gives. "
    return String(repeating: unit, count: tokens * 4 / unit.utf8.count + 1)
}

func engineCounters(_ urls: [String]) async throws -> (queries: Double, hits: Double) {
    var q = 0.0, h = 0.0
    for u in urls {
        let m = try await TestHTTP.request(u + "/metrics").body
        q += TestHTTP.metricSum(m, "vllm:prefix_cache_queries_total")
        h += TestHTTP.metricSum(m, "vllm:prefix_cache_hits_total")
    }
    return (q, h)
}

func resetCaches(_ urls: [String]) async throws {
    for u in urls { _ = try await TestHTTP.request(u + "/reset_prefix_cache", method: .POST) }
}
