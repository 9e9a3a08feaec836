import ArgumentParser
import Foundation
import KVRouteCore
import KVRouteExtProc
import Logging
import ServiceLifecycle

struct EPPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "epp",
        abstract: "Serve an Envoy ext_proc endpoint picker (Gateway API Inference Extension / llm-d compatible).",
        discussion: "Envoy calls Process on --grpc-port; health is grpc.health.v1 on --health-port; Prometheus metrics on --metrics-port."
    )

    @Option(help: "ext_proc gRPC port.") var grpcPort = 9002
    @Option(help: "gRPC health port.") var healthPort = 9003
    @Option(help: "Prometheus metrics port.") var metricsPort = 9090
    @Option(help: "Address to listen on.") var host = "0.0.0.0"
    @Option(help: "Engine base URLs, comma-separated (DNS names are re-resolved).") var endpoints: [String] = []
    @Option(help: "An llm-d EndpointPickerConfig YAML file (default: kvroute's profile).") var config: String?
    @Option(help: "TLS certificate chain (PEM) for the ext_proc port; plaintext without it.") var cert: String?
    @Option(help: "TLS private key (PEM).") var key: String?
    @Option(help: "Metrics scrape interval, ms.") var scrapeIntervalMs = 50
    @Option(help: "Seed for tie-breaks (default: random).") var seed: UInt64?
    @OptionGroup var logging: LoggingOptions

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
        c.seed = seed
        if let config {
            do { c.pickerConfig = try EndpointPickerConfig.load(path: config) } catch { throw ValidationError("\(config): \(error)") }
        }
        let picker: PickerServer
        do { picker = try PickerServer(configuration: c, logger: logger) } catch let e as KVRouteError { throw ValidationError(e.message) }
        await picker.warmUp()
        let group = ServiceGroup(configuration: .init(services: try picker.services().map { .init(service: $0) },
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        logger.info("endpoint picker listening", metadata: [
            "grpc": "\(host):\(grpcPort)", "health": "\(host):\(healthPort)", "metrics": "\(host):\(metricsPort)",
            "endpoints": "\(picker.pool.members.map(\.address.description))",
        ])
        try await group.run()
    }
}
