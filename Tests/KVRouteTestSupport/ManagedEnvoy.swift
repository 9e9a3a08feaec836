import Foundation

/// Real Envoy running one of deploy/envoy's configurations, filled in with test ports by
/// deploy/envoy/render.sh, as a ``ManagedProcess``.
public final class ManagedEnvoy: Sendable {
    public let listenPort = freePort()
    public let adminPort = freePort()
    public let process: ManagedProcess
    public var url: String { "http://127.0.0.1:\(listenPort)" }
    let configFile: URL

    public static var binary: String? { ExternalTool.find("envoy") }

    public init(config: String = "envoy-epp.yaml", eppPort: Int, eppHealthPort: Int, engines: [String], requestBodyMode: String = "NONE") throws {
        let root = ExternalTool.repositoryRoot
        let r = try ExternalTool.run(root.appendingPathComponent("deploy/envoy/render.sh").path, [
            root.appendingPathComponent("deploy/envoy/\(config)").path, "\(listenPort)", "\(adminPort)", "127.0.0.1:\(eppPort)", "\(eppHealthPort)",
            engines.joined(separator: ","), requestBodyMode,
        ])
        guard r.status == 0 else { throw ExternalTool.Missing(description: "render.sh failed: \(r.stderr)") }
        configFile = FileManager.default.temporaryDirectory.appendingPathComponent("kvroute-envoy-\(UUID().uuidString.prefix(8)).yaml")
        try r.stdout.write(to: configFile, atomically: true, encoding: .utf8)
        process = try ManagedProcess(try ExternalTool.require("envoy"), [
            "-c", configFile.path, "--disable-hot-restart", "--log-level", "warning", "--concurrency", "2",
        ], name: "envoy")
    }

    public func waitReady() async throws {
        try await waitForOK("http://127.0.0.1:\(adminPort)/ready", timeout: 15, process: process)
    }

    /// One counter or gauge from Envoy's admin stats; throws when Envoy does not report it.
    public func stat(_ name: String) async throws -> Double {
        try await Self.stat(name, adminPort: adminPort)
    }

    /// One counter or gauge from the admin stats of the Envoy at `adminPort`. A stat Envoy
    /// does not report (a renamed cluster, a filter that is not in the chain) is an error,
    /// never 0: a test expecting `== 0` must not pass because the stat is missing.
    public static func stat(_ name: String, adminPort: Int) async throws -> Double {
        let r = try await TestHTTP.request("http://127.0.0.1:\(adminPort)/stats?filter=^\(name)$", contentType: nil)
        let value = r.body.split(separator: "\n").compactMap { line -> Double? in
            guard line.hasPrefix(name + ":") else { return nil }
            return Double(line.split(separator: " ").last ?? "")
        }.first
        guard let value else {
            throw ExternalTool.Missing(description: "Envoy reports no stat \(name) (HTTP \(r.status)): \(r.body.prefix(300))")
        }
        return value
    }

    /// Envoy drains for a long while on SIGTERM (its ext_proc streams stay open); tests want
    /// it gone now.
    public func stop() {
        process.kill()
        try? FileManager.default.removeItem(at: configFile)
    }

    deinit { stop() }
}
