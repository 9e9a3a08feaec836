import ArgumentParser
import Foundation
import KVRouteCore
import KVRouteRouting
import KVRouteExtProc
import Logging
import ServiceLifecycle

struct EPPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "epp",
        abstract: "Serve an Envoy ext_proc endpoint picker (Gateway API Inference Extension / llm-d protocol).",
        discussion: """
        Envoy calls envoy.service.ext_proc.v3.ExternalProcessor/Process on --grpc-port; gRPC health \
        (grpc.health.v1) answers on --health-port; Prometheus metrics on --metrics-port. \
        deploy/envoy/ holds Envoy configurations for it; the README and docs/architecture.md describe both.

        \(PreciseOptions.discussion)
        """
    )

    @Option(help: "ext_proc gRPC port.") var grpcPort = 9002
    @Option(help: "gRPC health port.") var healthPort = 9003
    @Option(help: "Prometheus metrics port.") var metricsPort = 9090
    @Option(help: "Address to listen on.") var host = "0.0.0.0"
    @Option(help: "Engine base URLs, comma-separated (http://host:port; DNS names are re-resolved).") var endpoints: [String] = []
    @Option(help: "An llm-d EndpointPickerConfig YAML file (default: kvroute's own profile).") var config: String?
    @Option(help: "A built-in routing configuration instead of --config: \(EndpointPickerConfig.builtInNames.joined(separator: ", ")).")
    var policy: String?
    @Option(help: "TLS certificate chain (PEM) for the ext_proc port; plaintext without it.") var cert: String?
    @Option(help: "TLS private key (PEM) for the ext_proc port.") var key: String?
    @Option(help: "Endpoints one decision names (primary, then fallbacks in the envoy.lb metadata).") var maxAttempts = 3
    @Flag(help: "List the fallbacks in the x-gateway-destination-endpoint header too (Envoy's ORIGINAL_DST cluster takes only one address).") var fallbacksInHeader = false
    @Option(help: "Metrics scrape interval, ms.") var scrapeIntervalMs = 50
    @Option(help: "Health probe interval, ms.") var probeIntervalMs = 250
    @Option(help: "DNS re-resolution interval for endpoint names, s.") var discoveryIntervalS = 5
    @Option(help: "Seed for tie-breaks and random choices (default: random).") var seed: UInt64?
    @OptionGroup var precise: PreciseOptions
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var tracing: TracingOptions

    func run() async throws {
        let logger = logging.bootstrap(label: "kvroute.epp")
        guard (cert == nil) == (key == nil) else { throw ValidationError("--cert and --key go together") }
        var c = PickerServer.Configuration()
        c.host = host
        c.grpcPort = grpcPort
        c.healthPort = healthPort
        c.metricsPort = metricsPort
        c.endpoints = endpoints
        c.certificatePath = cert
        c.keyPath = key
        c.scrapeInterval = .milliseconds(scrapeIntervalMs)
        c.probeInterval = .milliseconds(probeIntervalMs)
        c.discoveryInterval = .seconds(discoveryIntervalS)
        c.seed = seed
        c.options.maxAttempts = maxAttempts
        c.options.fallbacksInHeader = fallbacksInHeader
        if let config {
            do { c.pickerConfig = try EndpointPickerConfig.load(path: config) } catch { throw ValidationError("\(config): \(error)") }
        }
        if let policy {
            guard config == nil else { throw ValidationError("--policy and --config exclude each other") }
            guard let builtIn = EndpointPickerConfig.builtIn(policy) else {
                throw ValidationError("--policy: unknown \"\(policy)\" (known: \(EndpointPickerConfig.builtInNames.joined(separator: ", ")))")
            }
            c.pickerConfig = builtIn
        }
        let prepared = try precise.prepare(config: c.pickerConfig, endpoints: endpoints, logger: logger)
        let picker: PickerServer
        do { picker = try PickerServer(configuration: c, logger: logger) } catch let e as KVRouteError { throw ValidationError(e.message) }
        let index = try prepared?.start(router: picker.router)
        let tracer = try tracing.bootstrap(serviceName: "kvroute-epp", logger: logger)
        await picker.warmUp()
        try await CommandFailure.reporting("epp") {
            let servers = ServerGroup((tracer.map { [$0] } ?? []) + (index.map { [$0] } ?? []) + (try picker.services()), logger: logger)
            guard let ports = try await servers.untilListening({ await picker.waitUntilListening() }) else { return }
            logger.info("endpoint picker listening", metadata: [
                "grpc": "\(host):\(ports.grpc)", "health": "\(host):\(ports.health)", "metrics": "\(host):\(ports.metrics)",
                "tls": "\(cert != nil)", "endpoints": "\(picker.pool.members.map(\.address.description))",
            ])
            try await servers.wait()
        }
    }
}
