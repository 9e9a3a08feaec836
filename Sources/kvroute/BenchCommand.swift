import ArgumentParser
import AsyncHTTPClient
import Foundation
import KVRouteBench
import KVRouteCore
import KVRouteEngineSim

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Compare routing policies on a workload, against the best possible hit rate.",
        discussion: """
        Workloads: ramp, shared-prefix[:sglang|:llm-d], multi-turn, trace:FILE (Mooncake JSONL).
        Policies: random, round-robin, session-hash, least-load, approx-prefix, kvroute, config:FILE.
        Example: kvroute bench --workload shared-prefix --engines 8 --json out.json --plot charts/
        """
    )

    @Option(help: "simulate (virtual time, in-process engines and the real routing core) or live (real time through gateways).") var mode = "simulate"
    @Option(help: "live: a gateway to send the workload through, as LABEL=URL or URL (repeatable; engines' caches are reset between gateways).") var gatewayUrl: [String] = []
    @Option(help: "live: the engines' base URLs, comma-separated (their /metrics give the engine-side hit rate).") var engineUrls: String?
    @Option(help: "Workload: ramp, shared-prefix[:sglang|:llm-d], multi-turn, trace:FILE.") var workload = "shared-prefix"
    @Option(help: "Engines in the cluster.") var engines = 8
    @Option(help: "KV blocks per engine (default: the workload preset's cache-pressure setting).") var numGpuBlocks: Int?
    @Option(help: "Maximum running sequences per engine.") var maxNumSeqs = 256
    @Option(help: "Comma-separated policies (default: all standard ones).") var policies: String?
    @Option(help: "Also compare this EndpointPickerConfig file.") var config: String?
    @Option(help: "Open-loop arrival rate, requests/s (shared-prefix, ramp).") var qps: Double?
    @Option(help: "Closed-loop clients in flight (multi-turn active users).") var concurrency: Int?
    @Option(help: "Trace replay speed-up factor.") var speedup = 1.0
    @Option(help: "Replay at most this many trace requests.") var maxRequests: Int?
    @Option(help: "Shared-prefix groups / multi-turn users (override the preset).") var groups: Int?
    @Option(help: "Prompts per group / rounds per user (override the preset).") var perGroup: Int?
    @Option(help: "Seed for workload generation and tie-breaks.") var seed: UInt64 = 1
    @Option(help: "Write the report as JSON to this file.") var json: String?
    @Option(help: "Write SVG charts into this directory.") var plot: String?

    func makeWorkload() throws -> (any Workload, defaultBlocks: Int) {
        let (kind, arg) = workload.split(separator: ":", maxSplits: 1).map(String.init).splitFirst()
        switch kind {
        case "ramp":
            var w = RampWorkload()
            if let qps { w.interval = 1 / qps }
            w.seed = seed
            return (w, 34_560)
        case "shared-prefix":
            guard var w = SharedPrefixWorkload.preset(arg ?? "sglang") else { throw ValidationError("unknown shared-prefix preset \(arg ?? "") (sglang, llm-d)") }
            if let groups { w.groups = groups }
            if let perGroup { w.promptsPerGroup = perGroup }
            // About 80 % of what the cluster serves under a cache-oblivious policy (measured
            // with this engine model: ~4.7 requests/s per engine for the sglang preset).
            w.qps = qps ?? 3.75 * Double(engines)
            w.seed = seed
            // Distinct prefix blocks exceed one engine's cache but fit the cluster's.
            let prefixBlocks = w.groups * w.prefixTokens / 16
            return (w, max(2_048, prefixBlocks * 2 / engines))
        case "multi-turn":
            var w = MultiTurnWorkload(seed: seed)
            if let groups { w.users = groups }
            if let perGroup { w.rounds = perGroup }
            w.activeUsers = concurrency ?? w.users
            let perUser = (w.systemTokens + w.rounds * (w.questionTokens + w.answerTokens) + 64) / 16
            return (w, max(512, perUser * w.users * 2 / engines))
        case "trace":
            guard let path = arg else { throw ValidationError("trace needs a file: --workload trace:FILE") }
            do {
                let w = try TraceWorkload(path: path, speedup: speedup, maxRequests: maxRequests)
                // The trace's distinct 512-token blocks, in KV blocks of 16: more than one
                // engine holds, about two thirds of what the cluster holds.
                let distinct = Set(w.entries.flatMap(\.hashIDs)).count * (w.blockTokens / 16)
                return (w, max(2_048, distinct * 3 / (2 * engines)))
            } catch let e as KVRouteError { throw ValidationError(e.message) }
        default:
            throw ValidationError("unknown workload \"\(workload)\" (ramp, shared-prefix, multi-turn, trace:FILE)")
        }
    }

    func run() async throws {
        guard mode == "simulate" || mode == "live" else { throw ValidationError("--mode must be simulate or live") }
        if mode == "live" { return try await runLive() }
        guard engines >= 1 else { throw ValidationError("--engines must be at least 1") }
        let (w, defaultBlocks) = try makeWorkload()
        var names = policies.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } } ?? BenchPolicy.standardNames
        if let config { names.append("config:" + config) }
        let resolved: [BenchPolicy]
        do { resolved = try names.map(BenchPolicy.named) } catch let e as KVRouteError { throw ValidationError(e.message) }
        let engine = EngineConfiguration(numGPUBlocks: numGpuBlocks ?? defaultBlocks, maxNumSeqs: maxNumSeqs, hashSeed: "0", seed: seed)
        let runner = BenchRunner(simulation: Simulation(engines: engines, engine: engine, seed: seed), policies: resolved)
        let tty = isatty(STDERR_FILENO) != 0
        let report = try runner.run(w) { policy, done in
            if tty {
                FileHandle.standardError.write(Data("\r\u{1B}[K  \(policy): \(done) requests done".utf8))
            }
        }
        if tty { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        print(report.table())
        if let json {
            try report.json().write(to: URL(fileURLWithPath: json))
            print("wrote \(json)")
        }
        if let plot {
            for f in try BenchPlots.write(report, to: plot) { print("wrote \(f)") }
        }
    }
}

extension BenchCommand {
    func runLive() async throws {
        guard !gatewayUrl.isEmpty else { throw ValidationError("--mode live needs --gateway-url") }
        guard let engineUrls else { throw ValidationError("--mode live needs --engine-urls (the engines behind the gateway)") }
        let engines = engineUrls.split(separator: ",").map(String.init)
        let (w, _) = try makeWorkload()
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(timeout: .init(connect: .seconds(5))))
        var results: [PolicyReport] = []
        var issued: [(tokens: [UInt32], answer: [UInt32])] = []
        var settings = w.settings
        let start = ContinuousClock.now
        do {
            for entry in gatewayUrl {
                let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
                let (label, url) = parts.count == 2 ? (parts[0], parts[1]) : ("gateway", parts[0])
                for e in engines {
                    var req = HTTPClientRequest(url: e + "/reset_prefix_cache")
                    req.method = .POST
                    _ = try? await client.execute(req, timeout: .seconds(10))
                }
                FileHandle.standardError.write(Data("  \(label): sending \(w.name) through \(url)\n".utf8))
                let runner = LiveRunner(gatewayURL: url, engineURLs: engines, client: client)
                let (run, engineHit) = try await runner.run(w, label: label)
                if issued.isEmpty { issued = run.issued }
                results.append(PolicyReport(run: run))
                settings["engine_hit_rate_\(label)"] = engineHit.map { String(format: "%.4f", $0) } ?? "n/a"
            }
        } catch {
            try? await client.shutdown()
            throw ValidationError("live run failed: \(error)")
        }
        try? await client.shutdown()
        let elapsed = ContinuousClock.now - start
        let report = BenchReport(
            workload: w.name, mode: "live", engines: engines.count, numGPUBlocks: numGpuBlocks ?? 0, blockSize: 16, settings: settings,
            upperBoundHitRate: Bounds.upperBound(issued, blockSize: 16),
            clusterCapacityHitRate: Bounds.clusterCapacity(issued, blockSize: 16, capacity: (numGpuBlocks ?? 34_560) * engines.count),
            results: results, wallSeconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
        print(report.table())
        if let json { try report.json().write(to: URL(fileURLWithPath: json)); print("wrote \(json)") }
        if let plot { for f in try BenchPlots.write(report, to: plot) { print("wrote \(f)") } }
    }
}

extension Array where Element == String {
    func splitFirst() -> (String, String?) { (self.first ?? "", self.count > 1 ? self[1] : nil) }
}
