import ArgumentParser
import AsyncHTTPClient
import Foundation
import KVRouteBench
import KVRouteCore
import KVRouteDataLayer
import KVRouteDemo
import KVRouteEngineSim
import KVRouteGateway
import KVRouteValidate
import Logging
import ServiceLifecycle

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the whole system on this machine: simulated engines, the gateway, the cache-hit validation and a contrast table.",
        discussion: """
        Scenarios: ramp (default) — the cache-hit validation, then a contrast table; topics — several topics, each with a \
        long shared preamble, asked in random order by many users through the KV-cache-aware gateway, then through \
        round-robin: per topic, the engine that holds it, how many of its questions went back there, and TTFT of misses \
        against hits. Then keeps serving (gateway, dashboard) until Ctrl-C; --once exits with the validation's exit code.
        """
    )

    @Option(help: "ramp or topics.") var scenario = "ramp"
    @Option(help: "topics: how many topics.") var topics = 6
    @Option(help: "topics: how many questions in all.") var questions = 72

    @Flag(help: "Exit after the report, with the validator's exit code.") var once = false
    @Option(help: "Seconds between measured requests (the cache-hit ramp uses 0.3).") var sleepSeconds = 0.3
    @Option(help: "Measured requests of the ramp.") var requests = 80
    @Option(help: "Gateway port (0 = any free port).") var port = 0
    @Option(help: "Wall seconds per modelled engine second (lower is faster).") var timeScale = 1.0
    @Option(help: "Write the ramp's JSON report to this file.") var json: String?
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        var l = logging
        if l.logLevel == .info { l.logLevel = .warning }
        let logger = l.bootstrap(label: "kvroute.demo")
        guard scenario == "ramp" || scenario == "topics" else { throw ValidationError("--scenario must be ramp or topics") }
        guard topics >= 1, questions >= 1 else { throw ValidationError("--topics and --questions must be at least 1") }
        var s = Demo.Settings()
        // Topics: engines with an H100's cache, so what decides a hit is where a topic goes.
        if scenario == "topics" { s.numGPUBlocks = EngineConfiguration().numGPUBlocks }
        // A fresh operator secret per run: the decision header and the dashboard are its.
        s.explainSecret = (0..<4).map { _ in String(UInt64.random(in: .min ... .max), radix: 16) }.joined()
        s.sleepSeconds = sleepSeconds
        s.requests = requests
        s.gatewayPort = port
        s.timeScale = timeScale
        let demo = try Demo(settings: s, logger: logger)
        let client = HTTPClientService.makeClient(connectTimeout: .seconds(5))
        let code: Int32
        do {
            code = try await serve(demo, client: client, logger: logger)
        } catch {
            try? await client.shutdown()
            throw error
        }
        try? await client.shutdown()
        if code != 0 { throw ExitCode(code) }
    }

    /// Starts the engines, then the gateways in front of them, runs the ramp and the contrast
    /// runs, then serves until a signal; returns the exit code. A part that cannot start ends
    /// the demo with one line naming it.
    func serve(_ demo: Demo, client: HTTPClient, logger: Logger) async throws -> Int32 {
        let s = demo.settings
        // Engines and gateways run as two groups: the gateways take the signals and stop
        // first (in-flight requests finish), then the engines.
        let engines = ServerGroup(demo.services, logger: logger, stopsOnSignals: false)
        let ports: [Int]
        do {
            guard let p = try await engines.untilListening({ await demo.cluster.waitUntilListening() }) else { return 0 }
            ports = p
        } catch {
            throw CommandFailure.exit("demo", CommandFailure.describe(error))
        }
        let gateways: [(String, Gateway)]
        do {
            gateways = try demo.makeGateways(enginePorts: ports)
        } catch {
            try? await engines.stop()
            throw CommandFailure.exit("demo", "\(error)")
        }
        for (_, g) in gateways { await g.warmUp() }
        let front = ServerGroup(gateways.flatMap { $0.1.services }, logger: logger)
        func stop() async throws {
            try await front.stop()
            try await engines.stop()
        }
        let bound: [Int]
        do {
            let listening = try await front.untilListening {
                var bound: [Int] = []
                for (_, g) in gateways { bound.append(await g.waitUntilListening()) }
                return bound
            }
            guard let listening else {
                try await engines.stop()
                return 0
            }
            bound = listening
        } catch {
            try? await engines.stop()
            throw CommandFailure.exit("demo", CommandFailure.describe(error))
        }
        var urls: [String: String] = [:]
        for ((name, _), port) in zip(gateways, bound) { urls[name] = "http://127.0.0.1:\(port)" }
        let main = urls[Demo.policies[0]]!

        print("kvroute demo: \(ports.count) simulated vLLM engines (\(ports.map { "127.0.0.1:\($0)" }.joined(separator: ", "))), gateway \(main)")
        print("")
        if scenario == "topics" {
            let failed = await runTopics(urls: urls, enginePorts: ports, client: client)
            if once || failed {
                try await stop()
                return failed ? 1 : 0
            }
            print("Serving until Ctrl-C: gateway \(main)")
            try await front.wait()
            try await engines.stop()
            return 0
        }
        print("The cache-hit ramp through the KV-cache-aware gateway: reset, \(s.warmupCount) warm-up, \(s.requests) requests \(s.sleepSeconds) s apart, one session")
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
        for mode in Demo.policies {
            let label = mode == "default" ? "kvroute picker" : mode == "consistent-hash" ? "picker off (consistent hash)" : "round-robin"
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
        // A signal stops the gateways (in-flight requests finish), then the engines.
        try await front.wait()
        try await engines.stop()
        return exit
    }
}

extension DemoCommand {
    /// The topics scenario through the picker gateway, then round-robin; true when a run failed.
    func runTopics(urls: [String: String], enginePorts: [Int], client: HTTPClient) async -> Bool {
        let w = TopicsWorkload(topics: topics, questions: questions, preambleTokens: 2_000)
        let engineURLs = enginePorts.map { "http://127.0.0.1:\($0)" }
        let names = enginePorts.map { "127.0.0.1:\($0)" }
        print("Topics: \(topics) topics, each with its own ~2,000-token preamble, \(questions) questions in random order from \(w.users) users (\(w.qps) per second)")
        for (mode, label) in [("default", "KV-cache-aware gateway"), ("round-robin", "round-robin, for contrast")] {
            guard let url = urls[mode] else { continue }
            for e in engineURLs {
                var req = HTTPClientRequest(url: e + "/reset_prefix_cache")
                req.method = .POST
                _ = try? await client.execute(req, timeout: .seconds(10))
            }
            print("")
            print("==> \(label) (\(url)):")
            do {
                let (run, _) = try await LiveRunner(gatewayURL: url, engineURLs: engineURLs, client: client).run(w, label: label)
                print(w.table(run, engineNames: names))
            } catch {
                print("    failed: \(error)")
                return true
            }
        }
        print("")
        print("A miss computes the whole preamble; a hit only the question. \"held by\" is the engine that served most of a topic's questions.")
        return false
    }
}
