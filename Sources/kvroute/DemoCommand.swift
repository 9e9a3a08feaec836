import ArgumentParser
import AsyncHTTPClient
import Foundation
import KVRouteCore
import KVRouteDataLayer
import KVRouteDemo
import KVRouteGateway
import KVRouteValidate
import Logging
import ServiceLifecycle

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the whole system on this machine: simulated engines, the gateway, the seed's cache-hit validation and a contrast table.",
        discussion: "Then keeps serving (gateway, dashboard) until Ctrl-C; --once exits with the validation's exit code."
    )

    @Flag(help: "Exit after the report, with the validator's exit code.") var once = false
    @Option(help: "Seconds between measured requests (the seed's ramp uses 0.3).") var sleepSeconds = 0.3
    @Option(help: "Measured requests of the ramp.") var requests = 80
    @Option(help: "Gateway port (0 = any free port).") var port = 0
    @Option(help: "Wall seconds per modelled engine second (lower is faster).") var timeScale = 1.0
    @Option(help: "Write the ramp's JSON report to this file.") var json: String?
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        var l = logging
        if l.logLevel == .info { l.logLevel = .warning }
        let logger = l.bootstrap(label: "kvroute.demo")
        var s = Demo.Settings()
        // A fresh operator secret per run: the decision header and the dashboard are its.
        s.explainSecret = (0..<4).map { _ in String(UInt64.random(in: .min ... .max), radix: 16) }.joined()
        s.sleepSeconds = sleepSeconds
        s.requests = requests
        s.gatewayPort = port
        s.timeScale = timeScale
        let demo = try Demo(settings: s, logger: logger)
        let clusterGroup = ServiceGroup(configuration: .init(services: demo.services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        let client = HTTPClientService.makeClient(connectTimeout: .seconds(5))

        // Engines and gateways run as two service groups: gateways stop first, engines last.
        let clusterTask = Task { try await clusterGroup.run() }
        let code: Int32 = try await {
            var gatewayGroup: ServiceGroup?
            var gatewayTask: Task<Void, any Error>?
            func stop() async throws {
                if let gatewayGroup, let gatewayTask {
                    await gatewayGroup.triggerGracefulShutdown()
                    try await gatewayTask.value
                }
                await clusterGroup.triggerGracefulShutdown()
                try await clusterTask.value
            }
            let ports = await demo.cluster.waitUntilListening()
            let gateways = try demo.makeGateways(enginePorts: ports)
            for (_, g) in gateways { await g.warmUp() }
            let group = ServiceGroup(configuration: .init(services: gateways.flatMap { $0.1.services }.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            gatewayGroup = group
            gatewayTask = Task { try await group.run() }
            var urls: [RoutingMode: String] = [:]
            for (mode, g) in gateways { urls[mode] = "http://127.0.0.1:\(await g.waitUntilListening())" }
            let main = urls[.picker]!

            print("kvroute demo: \(ports.count) simulated vLLM engines (\(ports.map { "127.0.0.1:\($0)" }.joined(separator: ", "))), gateway \(main)")
            print("")
            print("The seed's ramp through the KV-cache-aware gateway: reset, \(s.warmupCount) warm-up, \(s.requests) requests \(s.sleepSeconds) s apart, one session")
            let ramp: ValidationReport
            do {
                ramp = try await demo.ramp(gateway: main, enginePorts: ports, client: client, output: ConsoleOutput())
            } catch let f as ValidationFailure {
                FileHandle.standardError.write(Data("kvroute demo: \(f.message)\n".utf8))
                try await stop()
                return f.code.exitCode
            }
            print(ramp.renderTable())
            if let json { try ramp.json().write(to: URL(fileURLWithPath: json)) }
            print("")
            var rows: [Demo.Row] = []
            for mode in [RoutingMode.picker, .consistentHash, .roundRobin] {
                let label = mode == .picker ? "kvroute picker" : mode == .consistentHash ? "picker off (consistent hash)" : "round-robin"
                print("==> contrast run: \(label)")
                do {
                    rows.append(Demo.Row(mode: label, report: try await demo.contrast(gateway: urls[mode]!, enginePorts: ports, client: client)))
                } catch let f as ValidationFailure {
                    print("    failed: \(f.message)")
                }
            }
            print(Demo.table(rows, sessions: s.contrastSessions))
            print("")
            let exit: Int32 = ramp.passed ? 0 : 1
            if once {
                try await stop()
                return exit
            }
            print("Serving until Ctrl-C:")
            print("  gateway    \(main)")
            print("  dashboard  \(main)/dashboard?key=\(s.explainSecret ?? "")")
            print("  metrics    \(main)/metrics")
            print("  try:       curl -s \(main)/v1/chat/completions -H 'content-type: application/json' -H 'x-session-id: me' -H 'x-kvroute-explain: \(s.explainSecret ?? "")' -i \\")
            print("               -d '{\"model\":\"meta-llama/Llama-3.2-3B-Instruct\",\"messages\":[{\"role\":\"user\",\"content\":\"Write a story about AI\"}],\"max_tokens\":32}'")
            // Ctrl-C reaches both groups; wait for the gateways, then the engines.
            try await gatewayTask?.value
            try await clusterTask.value
            return exit
        }()
        try? await client.shutdown()
        if code != 0 { throw ExitCode(code) }
    }
}

