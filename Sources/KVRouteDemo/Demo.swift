import AsyncHTTPClient
import Foundation
import KVRouteCore
import KVRouteDataLayer
import KVRouteEngineSim
import KVRouteGateway
import KVRouteSimServer
import KVRouteValidate
import Logging
import ServiceLifecycle

/// The whole system on one machine: simulated engines, a gateway per routing policy, the
/// cache-hit validation through the KV-cache-aware gateway, and a contrast table.
public struct Demo: Sendable {
    public struct Settings: Sendable {
        public var engines = 3
        public var requests = 80
        public var sleepSeconds = 0.3
        public var warmupCount = 1
        public var timeScale = 1.0
        /// KV blocks per engine: room for about four of the contrast run's prompts.
        public var numGPUBlocks = 300
        public var contrastSessions = 8
        public var contrastRequests = 10
        public var minHitRate = 0.95
        public var minStickiness = 0.99
        public var gatewayPort = 0
        /// The picker gateway's explain secret (decision header, dashboard); nil: none.
        public var explainSecret: String?
        public init() {}
    }

    /// One row of the contrast table.
    public struct Row: Sendable {
        public var mode: String
        public var report: ValidationReport
        public init(mode: String, report: ValidationReport) {
            self.mode = mode
            self.report = report
        }
    }

    public let settings: Settings
    public let logger: Logger
    public let cluster: SimCluster

    public init(settings: Settings, logger: Logger) throws {
        self.settings = settings
        self.logger = logger
        var engine = EngineConfiguration(numGPUBlocks: settings.numGPUBlocks, hashSeed: "0")
        engine.defaultMaxTokens = 64
        cluster = try SimCluster(engines: settings.engines, basePort: 0, engine: engine, timeScale: settings.timeScale,
                                 server: .init(podName: "sim", enablePromptTokensDetails: true), podNamePrefix: "sim", logger: logger)
    }

    /// Every service of the demo (engines first, so they stop last).
    public var services: [any Service] { cluster.services }

    /// The built-in configurations the demo contrasts: the KV-cache-aware picker first, then
    /// the mesh fallback and round-robin.
    public static let policies = ["default", "consistent-hash", "round-robin"]

    /// The gateways in front of the engines, one per ``policies`` entry: the KV-cache-aware
    /// picker on `gatewayPort`, the others on free ports.
    public func makeGateways(enginePorts: [Int]) throws -> [(String, Gateway)] {
        let endpoints = [enginePorts.map { "http://127.0.0.1:\($0)" }.joined(separator: ",")]
        return try Self.policies.map { name in
            let main = name == Self.policies[0]
            return (name, try Gateway(configuration: GatewayConfiguration(
                host: "127.0.0.1", port: main ? settings.gatewayPort : 0, endpoints: endpoints, pickerConfig: EndpointPickerConfig.builtIn(name)!,
                explainSecret: main ? settings.explainSecret : nil), logger: logger))
        }
    }

    func settings(gateway: String, enginePorts: [Int], sessions: Int, requests: Int, distinct: Bool, session: String) -> ValidationSettings {
        var s = ValidationSettings(
            gatewayURL: gateway, warmupCount: settings.warmupCount, requests: requests, sleepSeconds: settings.sleepSeconds,
            maxTokens: 16, sessionID: session, sessions: sessions, metricsURLs: enginePorts.map { "http://127.0.0.1:\($0)" },
            reset: true, minHitRate: sessions == 1 ? settings.minHitRate : nil, minStickiness: sessions == 1 ? settings.minStickiness : nil)
        s.distinctPrompts = distinct
        return s
    }

    /// The cache-hit ramp through the KV-cache-aware gateway: reset, the warm-up, then the
    /// measured requests in one session.
    public func ramp(gateway: String, enginePorts: [Int], client: HTTPClient, output: any ValidationOutput) async throws -> ValidationReport {
        try await Validator(settings: settings(gateway: gateway, enginePorts: enginePorts, sessions: 1, requests: settings.requests, distinct: false, session: "demo-ramp"),
                            client: client, output: output).run()
    }

    /// Separate tenants (each session its own prompt) through one gateway: where routing
    /// decides whether caches keep up.
    public func contrast(gateway: String, enginePorts: [Int], client: HTTPClient) async throws -> ValidationReport {
        try await Validator(settings: settings(gateway: gateway, enginePorts: enginePorts, sessions: settings.contrastSessions,
                                               requests: settings.contrastRequests, distinct: true, session: "tenant"),
                            client: client, output: SilentOutput()).run()
    }

    /// The contrast table.
    public static func table(_ rows: [Row], sessions: Int) -> String {
        var lines = ["Contrast: \(sessions) tenants at once, each with its own ~1,100-token prompt, engines caching about four prompts each"]
        let header = ["routing", "delta hit rate", "stickiness (header)", "stickiness (metrics)", "TTFT p50", "TTFT p99"]
        var table = [header]
        for r in rows {
            table.append([r.mode, ValidationReport.pct(r.report.deltaHitRate), ValidationReport.pct(r.report.stickinessHeader),
                          ValidationReport.pct(r.report.stickinessMetrics), ValidationReport.ms(r.report.ttftMs.p50), ValidationReport.ms(r.report.ttftMs.p99)])
        }
        let w = header.indices.map { c in table.map { $0[c].count }.max() ?? 0 }
        for (i, row) in table.enumerated() {
            lines.append("  " + row.enumerated().map { c, v in c == 0 ? v.padding(toLength: w[c], withPad: " ", startingAt: 0) : String(repeating: " ", count: w[c] - v.count) + v }.joined(separator: "  "))
            if i == 0 { lines.append("  " + w.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
        }
        lines.append("  (stickiness by metrics is the busiest engine's share of all tenants' queries: 1/3 means evenly spread)")
        return lines.joined(separator: "\n")
    }
}
