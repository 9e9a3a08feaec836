import Foundation
import KVRouteTestSupport

/// Simulated engines, each its own `kvroute sim` process so it can be killed and restarted
/// on its port, and the front doors in front of them: `kvroute gateway`, or `kvroute epp`
/// behind real Envoy.
final class ChaosStack: @unchecked Sendable {
    let enginePorts: [Int]
    let engines: [ManagedProcess]
    var engineURLs: [String] { enginePorts.map { "http://127.0.0.1:\($0)" } }
    private(set) var gateway: ManagedProcess?
    private(set) var gatewayPort = 0
    var gatewayURL: String { "http://127.0.0.1:\(gatewayPort)" }
    private(set) var picker: ManagedProcess?
    private(set) var pickerPorts = (grpc: 0, health: 0, metrics: 0)
    private(set) var envoy: ManagedEnvoy?

    /// The gateway's bound on an engine's silence within an answer, s: client deadlines sit
    /// far above it.
    static let gatewayTimeoutSeconds = 3
    /// The operator's secret, which opens the gateway's /dashboard/data.
    static let explainSecret = "chaos-operator-secret"

    /// - Parameter faults: extra `kvroute sim` flags for engine i.
    init(engines count: Int = 3, faults: (Int) -> [String] = { _ in [] }) throws {
        enginePorts = (0..<count).map { _ in freePort() }
        engines = try enginePorts.enumerated().map { i, port in
            try ManagedProcess(kvroute: [
                "sim", "--port", "\(port)", "--time-scale", "1", "--num-gpu-blocks", "2048", "--max-model-len", "32768",
                "--hash-seed", "0", "--seed", "\(i)", "--pod-name-prefix", "chaos-\(i)", "--log-level", "error",
            ] + faults(i), name: "sim-\(i)")
        }
    }

    func waitEngines() async throws {
        for (i, url) in engineURLs.enumerated() { try await waitForOK(url + "/health", process: engines[i]) }
    }

    func startGateway(extra: [String] = []) async throws {
        gatewayPort = freePort()
        let g = try ManagedProcess(kvroute: [
            "gateway", "--port", "\(gatewayPort)", "--endpoints", engineURLs.joined(separator: ","), "--seed", "1",
            "--probe-interval-ms", "100", "--scrape-interval-ms", "50", "--upstream-idle-timeout-s", "\(Self.gatewayTimeoutSeconds)",
            "--upstream-timeout-s", "20", "--explain-secret", Self.explainSecret, "--log-level", "error",
        ] + extra, name: "gateway")
        gateway = g
        try await waitForOK(gatewayURL + "/health", process: g)
    }

    func startPickerBehindEnvoy() async throws {
        pickerPorts = (freePort(), freePort(), freePort())
        let p = try ManagedProcess(kvroute: [
            "epp", "--host", "127.0.0.1", "--grpc-port", "\(pickerPorts.grpc)", "--health-port", "\(pickerPorts.health)",
            "--metrics-port", "\(pickerPorts.metrics)", "--endpoints", engineURLs.joined(separator: ","), "--seed", "1", "--log-level", "error",
        ], name: "epp")
        picker = p
        try await waitForPort(pickerPorts.grpc)
        let e = try ManagedEnvoy(eppPort: pickerPorts.grpc, eppHealthPort: pickerPorts.health, engines: engineURLs)
        envoy = e
        try await e.waitReady()
    }

    /// Changes an engine's faults at run time through `POST /admin/faults`.
    func setFaults(_ engine: Int, _ patch: [String: Any]) async throws {
        let r = try await TestHTTP.postJSON(engineURLs[engine] + "/admin/faults", patch)
        guard r.status == 200 else { throw ExternalTool.Missing(description: "admin/faults on engine \(engine): \(r.status) \(r.body)") }
    }

    /// One engine sample summed over series.
    func engineMetric(_ engine: Int, _ name: String) async throws -> Double {
        TestHTTP.metricSum(try await TestHTTP.request(engineURLs[engine] + "/metrics", contentType: nil).body, name)
    }

    /// The kvroute and Envoy processes that died, with how, for the failure message.
    var deadProcesses: [String] {
        ([gateway, picker].compactMap { $0 } + [envoy?.process].compactMap { $0 })
            .filter { !$0.isRunning }
            .map { "\($0.name) \($0.exitDescription): \($0.log.suffix(1500))" }
    }

    func stop() {
        envoy?.stop()
        for p in [gateway, picker].compactMap({ $0 }) + engines { p.stop(grace: 5) }
    }

    deinit { stop() }
}
