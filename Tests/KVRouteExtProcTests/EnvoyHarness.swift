import Foundation
import KVRouteCore
import KVRouteExtProc
import KVRouteTestSupport
import Logging

/// Real Envoy running one of deploy/envoy's configurations, rendered with test ports by
/// deploy/envoy/render.sh — the tested configuration is the shipped one.
final class EnvoyProcess: @unchecked Sendable {
    let listenPort = freePort()
    let adminPort = freePort()
    let process: BackgroundProcess
    var url: String { "http://127.0.0.1:\(listenPort)" }

    static var binary: String? { ExternalTool.find("envoy") }

    init(config: String, eppPort: Int, engines: [String]) throws {
        let root = ExternalTool.repositoryRoot
        let render = try ExternalTool.run(root.appendingPathComponent("deploy/envoy/render.sh").path, [
            root.appendingPathComponent("deploy/envoy/\(config)").path, "\(listenPort)", "\(adminPort)", "127.0.0.1:\(eppPort)",
            engines.map { $0.replacingOccurrences(of: "http://", with: "") }.joined(separator: ","),
        ])
        guard render.status == 0 else { throw ExternalTool.Missing(description: "render.sh failed: \(render.stderr)") }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("kvroute-envoy-\(UUID().uuidString.prefix(8)).yaml")
        try render.stdout.write(to: file, atomically: true, encoding: .utf8)
        process = try BackgroundProcess(try ExternalTool.require("envoy"), ["-c", file.path, "--disable-hot-restart", "--log-level", "warning", "--concurrency", "2"], name: "envoy")
    }

    func waitReady() async throws {
        for _ in 0..<200 {
            if let r = try? await TestHTTP.request("http://127.0.0.1:\(adminPort)/ready", contentType: nil), r.status == 200 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ExternalTool.Missing(description: "envoy did not become ready: \(process.log.suffix(2000))")
    }

    func stat(_ name: String) async throws -> Double {
        let r = try await TestHTTP.request("http://127.0.0.1:\(adminPort)/stats?filter=\(name)", contentType: nil)
        return r.body.split(separator: "\n").compactMap { line -> Double? in
            guard line.hasPrefix(name + ":") else { return nil }
            return Double(line.split(separator: " ").last ?? "")
        }.first ?? 0
    }

    /// Envoy drains on SIGTERM; tests want it gone now.
    func stop() {
        let p = process.process
        guard p.isRunning else { return }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    deinit { stop() }
}

/// kvroute epp in-process on free ports.
func withPicker<T: Sendable>(engines: [String], _ body: @Sendable (PickerServer) async throws -> T) async throws -> T {
    var c = PickerServer.Configuration()
    c.host = "127.0.0.1"
    c.grpcPort = freePort()
    c.healthPort = freePort()
    c.metricsPort = freePort()
    c.endpoints = engines
    c.seed = 1
    let picker = try PickerServer(configuration: c, logger: quietLogger)
    await picker.warmUp()
    return try await withServices(try picker.services()) {
        try await Task.sleep(for: .milliseconds(300))
        return try await body(picker)
    }
}

func chat(system: String, user: String, maxTokens: Int = 8) -> [String: Any] {
    ["model": "meta-llama/Llama-3.2-3B-Instruct", "max_tokens": maxTokens, "temperature": 0,
     "messages": [["role": "system", "content": system], ["role": "user", "content": user]]]
}

func prefix(_ group: Int, tokens: Int) -> String {
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
