import ArgumentParser
import Foundation
import KVRouteCore
import KVRouteRouting
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

        \(PreciseOptions.discussion)
        """
    )

    @Option(help: "Port to listen on (0 = any free port).") var port = 18080
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Engine base URLs, comma-separated (http://host:port).") var endpoints: [String] = []
    @Option(help: "An llm-d EndpointPickerConfig YAML file (default: kvroute's own profile).") var config: String?
    @Option(help: "on = the KV-cache-aware picker; off = the mesh fallback (consistent hash on x-session-id).") var picker: PickerSwitch = .on
    @Option(name: [.customLong("policy"), .customLong("mode")],
            help: "A built-in routing configuration instead of --config: \(EndpointPickerConfig.builtInNames.joined(separator: ", ")) (also picker, session-hash). --mode is the older name.")
    var policy: String?
    @Option(help: "Largest accepted request body, bytes.") var maxBodyBytes = 16 << 20
    @Option(help: "Endpoints one request may try before its first response byte.") var maxAttempts = 3
    @Option(help: "Metrics scrape interval, ms.") var scrapeIntervalMs = 50
    @Option(help: "Health probe interval, ms.") var probeIntervalMs = 250
    @Option(help: "DNS re-resolution interval for endpoint names, s.") var discoveryIntervalS = 5
    @Option(help: "Upper bound on one request's whole upstream exchange (every attempt, the answer's head and body), s.") var upstreamTimeoutS = 600.0
    @Option(help: "Longest silence of an engine within an answer's body, s: a stream then ends with an error event, a plain answer becomes 504.") var upstreamIdleTimeoutS = 60.0
    @Option(help: "Time allowed to connect to an engine, ms (a request still waiting for a connection then moves to the next engine).") var upstreamConnectTimeoutMs = 1000
    @Option(help: "Connections to one engine (requests above it wait for one up to the connect timeout).") var upstreamConnections = 1024
    @Option(help: "Largest non-streaming answer of an engine, bytes (read whole before it is sent on; larger ones become 502).") var maxResponseBytes = 32 << 20
    @Option(help: "A client connection idle between requests is closed after this long, s.") var clientIdleTimeoutS = 60.0
    @Option(help: "A request head must be complete this long after its first byte, s (else the connection is closed).") var clientHeaderTimeoutS = 10.0
    @Option(help: "A request body must be complete this long after its head, s (else 408 and the connection is closed).") var clientBodyTimeoutS = 60.0
    @Option(help: ArgumentHelp(
        "The operator's secret (at least 16 characters; or env KVROUTE_EXPLAIN_SECRET). Only requests sending x-kvroute-explain: SECRET get the x-kvroute-decision header, and /dashboard?key=SECRET is served only with it. Without it neither exists: per-endpoint prefix scores would tell any client what other clients sent. (There is no always-explain switch, for the same reason.)",
        valueName: "secret")) var explainSecret: String?
    @Option(help: "Seed for tie-breaks and random choices (default: random).") var seed: UInt64?
    @OptionGroup var precise: PreciseOptions
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var tracing: TracingOptions

    enum PickerSwitch: String, ExpressibleByArgument { case on, off }

    func gatewayConfiguration() throws -> GatewayConfiguration {
        guard !endpoints.isEmpty else { throw ValidationError("--endpoints is required (http://host:port,...)") }
        var picked: EndpointPickerConfig = picker == .on ? .kvrouteDefault : .consistentHash
        if let config {
            do { picked = try EndpointPickerConfig.load(path: config) } catch { throw ValidationError("\(config): \(error)") }
        }
        if let policy {
            guard let builtIn = EndpointPickerConfig.builtIn(policy) else {
                throw ValidationError("--policy: unknown \"\(policy)\" (known: \(EndpointPickerConfig.builtInNames.joined(separator: ", ")))")
            }
            // The old `--mode picker` kept --config's picker.
            if !(policy == "picker" && config != nil) { picked = builtIn }
        }
        return GatewayConfiguration(
            host: host, port: port, endpoints: endpoints,
            pickerConfig: picked, maxBodyBytes: maxBodyBytes, maxAttempts: maxAttempts,
            scrapeInterval: .milliseconds(scrapeIntervalMs), probeInterval: .milliseconds(probeIntervalMs),
            discoveryInterval: .seconds(discoveryIntervalS),
            upstreamTimeout: Double(try Self.seconds(upstreamTimeoutS, "--upstream-timeout-s").components.seconds),
            upstreamIdleTimeout: try Self.seconds(upstreamIdleTimeoutS, "--upstream-idle-timeout-s"),
            maxResponseBytes: maxResponseBytes, upstreamConnectionsPerEndpoint: max(1, upstreamConnections),
            upstreamConnectTimeout: .milliseconds(max(1, upstreamConnectTimeoutMs)),
            clientTimeouts: .init(
                idle: try Self.seconds(clientIdleTimeoutS, "--client-idle-timeout-s"),
                head: try Self.seconds(clientHeaderTimeoutS, "--client-header-timeout-s"),
                body: try Self.seconds(clientBodyTimeoutS, "--client-body-timeout-s")),
            explainSecret: try Self.explainSecret(explainSecret ?? ProcessInfo.processInfo.environment["KVROUTE_EXPLAIN_SECRET"]),
            seed: seed)
    }

    static func seconds(_ value: Double, _ flag: String) throws -> Duration {
        guard value.isFinite, value > 0 else { throw ValidationError("\(flag) must be a positive number of seconds") }
        return .milliseconds(Int64(min(value, 86_400) * 1000))
    }

    static func explainSecret(_ secret: String?) throws -> String? {
        guard let secret, !secret.isEmpty else { return nil }
        guard secret.count >= 16 else { throw ValidationError("--explain-secret must be at least 16 characters") }
        return secret
    }

    func run() async throws {
        let logger = logging.bootstrap(label: "kvroute.gateway")
        let gateway: Gateway
        let configuration = try gatewayConfiguration()
        let prepared = try precise.prepare(config: configuration.pickerConfig, endpoints: endpoints, logger: logger)
        do { gateway = try Gateway(configuration: configuration, logger: logger) } catch let e as KVRouteError {
            throw ValidationError(e.message)
        }
        let index = try prepared?.start(router: gateway.router)
        let tracer = try tracing.bootstrap(serviceName: "kvroute-gateway", logger: logger)
        await gateway.warmUp()
        try await CommandFailure.reporting("gateway", named: false) {
            let servers = ServerGroup((tracer.map { [$0] } ?? []) + (index.map { [$0] } ?? []) + gateway.services, logger: logger)
            guard let bound = try await servers.untilListening({ await gateway.waitUntilListening() }) else { return }
            logger.info("gateway listening", metadata: [
                "url": "http://\(host):\(bound)", "policy": "\(gateway.router.policyName)",
                "endpoints": "\(gateway.pool.members.map(\.address.description))", "healthy": "\(gateway.pool.healthyCount)",
            ])
            try await servers.wait()
        }
    }
}

