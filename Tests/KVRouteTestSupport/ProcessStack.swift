import Foundation
import KVRouteTestSupport

/// Simulated engines, each its own `kvroute sim` process so it can be killed and restarted
/// on its port, and the front doors in front of them: `kvroute gateway`, or `kvroute epp`
/// behind real Envoy. Every process is stopped by ``stop()`` (and on release).
public final class ProcessStack: @unchecked Sendable {
    public private(set) var enginePorts: [Int]
    /// The loopback address each engine listens on (127.0.0.1 unless added with another).
    public private(set) var engineHosts: [String] = []
    public private(set) var engines: [ManagedProcess]
    public var engineURLs: [String] { zip(engineHosts, enginePorts).map { "http://\($0):\($1)" } }
    public private(set) var gateway: ManagedProcess?
    public private(set) var gatewayPort = 0
    public var gatewayURL: String { "http://127.0.0.1:\(gatewayPort)" }
    public private(set) var picker: ManagedProcess?
    public private(set) var pickerPorts = (grpc: 0, health: 0, metrics: 0)
    public private(set) var envoy: ManagedEnvoy?
    private let engineFlags: (Int) -> [String]

    /// The gateway's bound on an engine's silence within an answer, s: client deadlines sit
    /// far above it.
    public static let gatewayTimeoutSeconds = 3
    /// The operator's secret, which opens the gateway's /dashboard/data.
    public static let explainSecret = "chaos-operator-secret"

    /// - Parameter faults: extra `kvroute sim` flags for engine i (also for engines added later).
    public init(engines count: Int = 3, faults: @escaping (Int) -> [String] = { _ in [] }) throws {
        engineFlags = faults
        enginePorts = []
        engines = []
        for _ in 0..<count { _ = try addEngine() }
    }

    /// Starts one more `kvroute sim` (engine i is pod `chaos-i`) on `host` (a loopback
    /// address) and `port` (a free one unless given); its index.
    @discardableResult
    public func addEngine(host: String = "127.0.0.1", port: Int? = nil) throws -> Int {
        let i = engines.count, port = port ?? freePort()
        let p = try ManagedProcess(kvroute: [
            "sim", "--enable-prompt-tokens-details", "--host", host, "--port", "\(port)", "--time-scale", "1", "--num-gpu-blocks", "2048", "--max-model-len", "32768",
            "--hash-seed", "0", "--seed", "\(i)", "--pod-name-prefix", "chaos-\(i)", "--log-level", "error",
        ] + engineFlags(i), name: "sim-\(i)")
        enginePorts.append(port)
        engineHosts.append(host)
        engines.append(p)
        return i
    }

    /// Waits until every engine (or the given ones) answers /health.
    public func waitEngines(_ indices: [Int]? = nil) async throws {
        for i in indices ?? Array(engines.indices) { try await waitForOK(engineURLs[i] + "/health", process: engines[i]) }
    }

    /// `kvroute gateway` over the engines (or `endpoints`, e.g. a file or DNS form).
    public func startGateway(extra: [String] = [], endpoints: String? = nil, environment: [String: String] = [:]) async throws {
        gatewayPort = freePort()
        let g = try ManagedProcess(kvroute: [
            "gateway", "--port", "\(gatewayPort)", "--endpoints", endpoints ?? engineURLs.joined(separator: ","), "--seed", "1",
            "--probe-interval-ms", "100", "--scrape-interval-ms", "50", "--upstream-idle-timeout-s", "\(Self.gatewayTimeoutSeconds)",
            "--upstream-timeout-s", "20", "--explain-secret", Self.explainSecret, "--log-level", "error",
        ] + extra, name: "gateway", environment: environment)
        gateway = g
        try await waitForOK(gatewayURL + "/health", process: g)
    }

    /// `kvroute epp` over the engines (or `endpoints`), listening on ``pickerPorts``.
    public func startPicker(extra: [String] = [], endpoints: String? = nil, environment: [String: String] = [:]) async throws {
        pickerPorts = (freePort(), freePort(), freePort())
        let p = try ManagedProcess(kvroute: [
            "epp", "--host", "127.0.0.1", "--grpc-port", "\(pickerPorts.grpc)", "--health-port", "\(pickerPorts.health)",
            "--metrics-port", "\(pickerPorts.metrics)", "--endpoints", endpoints ?? engineURLs.joined(separator: ","), "--seed", "1", "--log-level", "error",
        ] + extra, name: "epp", environment: environment)
        picker = p
        try await waitForPort(pickerPorts.grpc)
    }

    /// ``startPicker(extra:endpoints:)``, and real Envoy in front of it routing to the engines.
    public func startPickerBehindEnvoy(extra: [String] = [], endpoints: String? = nil, envoyConfig: String = "envoy-epp.yaml") async throws {
        try await startPicker(extra: extra, endpoints: endpoints)
        let e = try ManagedEnvoy(config: envoyConfig, eppPort: pickerPorts.grpc, eppHealthPort: pickerPorts.health, engines: engineURLs)
        envoy = e
        try await e.waitReady()
    }

    /// Changes an engine's faults at run time through `POST /admin/faults`.
    public func setFaults(_ engine: Int, _ patch: [String: Any]) async throws {
        let r = try await TestHTTP.postJSON(engineURLs[engine] + "/admin/faults", patch)
        guard r.status == 200 else { throw ExternalTool.Missing(description: "admin/faults on engine \(engine): \(r.status) \(r.body)") }
    }

    /// One engine sample summed over series.
    public func engineMetric(_ engine: Int, _ name: String) async throws -> Double {
        TestHTTP.metricSum(try await TestHTTP.request(engineURLs[engine] + "/metrics", contentType: nil).body, name)
    }

    /// The kvroute and Envoy processes that died, with how, for the failure message.
    public var deadProcesses: [String] {
        ([gateway, picker].compactMap { $0 } + [envoy?.process].compactMap { $0 })
            .filter { !$0.isRunning }
            .map { "\($0.name) \($0.exitDescription): \($0.log.suffix(1500))" }
    }

    public func stop() {
        envoy?.stop()
        for p in [gateway, picker].compactMap({ $0 }) + engines { p.stop(grace: 5) }
    }

    deinit { stop() }
}
