import ArgumentParser
import Foundation
import KVRouteCore
import KVRouteGateway
import Logging
import ServiceLifecycle

struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Serve an OpenAI-compatible gateway that routes each request to the engine most likely to hold its prefix.",
        discussion: """
        kvroute gateway --port 18080 --endpoints http://127.0.0.1:18001,http://127.0.0.1:18002 [--config epp.yaml] [--picker off]
        Endpoints whose host is a DNS name are re-resolved (a Kubernetes headless Service).
        """
    )

    @Option(help: "Port to listen on (0 = any free port).") var port = 18080
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Engine base URLs, comma-separated (http://host:port).") var endpoints: [String] = []
    @Option(help: "An llm-d EndpointPickerConfig YAML file (default: kvroute's own profile).") var config: String?
    @Option(help: "on = the KV-cache-aware picker; off = the mesh fallback (consistent hash on x-session-id).") var picker: PickerSwitch = .on
    @Option(help: "Override the routing mode: picker, consistent-hash, round-robin, random.") var mode: RoutingMode?
    @Option(help: "Largest accepted request body, bytes.") var maxBodyBytes = 16 << 20
    @Option(help: "Endpoints one request may try before its first response byte.") var maxAttempts = 3
    @Option(help: "Metrics scrape interval, ms.") var scrapeIntervalMs = 50
    @Option(help: "Health probe interval, ms.") var probeIntervalMs = 250
    @Option(help: "DNS re-resolution interval for endpoint names, s.") var discoveryIntervalS = 5
    @Option(help: "Upper bound on one upstream exchange, s.") var upstreamTimeoutS = 600.0
    @Flag(help: "Send the x-kvroute-decision header on every response (otherwise only when the request sends x-kvroute-explain: 1).") var explain = false
    @Option(help: "Seed for tie-breaks and random choices (default: random).") var seed: UInt64?
    @OptionGroup var logging: LoggingOptions

    enum PickerSwitch: String, ExpressibleByArgument { case on, off }

    func gatewayConfiguration() throws -> GatewayConfiguration {
        guard !endpoints.isEmpty else { throw ValidationError("--endpoints is required (http://host:port,...)") }
        var picked: EndpointPickerConfig = .kvrouteDefault
        if let config {
            do { picked = try EndpointPickerConfig.load(path: config) } catch { throw ValidationError("\(config): \(error)") }
        }
        return GatewayConfiguration(
            host: host, port: port, endpoints: endpoints, mode: mode ?? (picker == .on ? .picker : .consistentHash),
            pickerConfig: picked, maxBodyBytes: maxBodyBytes, maxAttempts: maxAttempts,
            scrapeInterval: .milliseconds(scrapeIntervalMs), probeInterval: .milliseconds(probeIntervalMs),
            discoveryInterval: .seconds(discoveryIntervalS), upstreamTimeout: upstreamTimeoutS, alwaysExplain: explain, seed: seed)
    }

    func run() async throws {
        let logger = logging.bootstrap(label: "kvroute.gateway")
        let gateway: Gateway
        do { gateway = try Gateway(configuration: try gatewayConfiguration(), logger: logger) } catch let e as KVRouteError {
            throw ValidationError(e.message)
        }
        await gateway.warmUp()
        let group = ServiceGroup(configuration: .init(
            services: gateway.services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        async let running: Void = group.run()
        let bound = await gateway.waitUntilListening()
        logger.info("gateway listening", metadata: [
            "url": "http://\(host):\(bound)", "mode": "\(gateway.policy.mode.rawValue)",
            "endpoints": "\(gateway.pool.members.map(\.address.description))", "healthy": "\(gateway.pool.healthyCount)",
        ])
        try await running
    }
}

extension RoutingMode: ExpressibleByArgument {}
