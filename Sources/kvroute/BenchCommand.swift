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
        Workloads: suite (all of the next six), agentic, rag, long-context, bursty, heterogeneous, failover, \
        ramp, shared-prefix[:sglang|:llm-d], multi-turn, trace:FILE (Mooncake JSONL); several comma-separated. \
        Policies: random, round-robin, session-hash, least-load, approx-prefix, kvroute, config:FILE.

        Engines default to vLLM on an H100-80GB serving Llama-3.2-3B: 34,560 KV blocks of 16 tokens, \
        max 1024 running sequences, 8,192 batched tokens per step.

        --load 0.5,0.8,1.0,1.2 runs every policy at those fractions of the capacity the bench measures \
        first, in virtual time, for each workload on its cluster: probes replay the workload under \
        --capacity-policy (default least-load: balanced, cache-blind) at a multiple of its nominal \
        arrival rate (open-loop requests: the same requests sooner; sessions: more sessions over the same \
        span, each at its own pace). A probe is saturated when queueing explodes: the TTFT p90 of the \
        second half of the arrivals exceeds 5x the light-load p90 (1/64 of the nominal rate) and 1 s more, \
        or requests go unanswered. The rate doubles or halves from nominal until one probe saturates and \
        one does not, then bisects 4 times; capacity = the highest unsaturated rate.

        Goodput: requests per second answered with TTFT within --ttft-slo-ms (default 2000). \
        Bounds per row, on the requests that policy issued: the upper bound (one engine, unlimited cache) \
        or, where the cluster's caches cannot hold what the stream reuses, the cluster-capacity reference \
        (one LRU cache of the cluster's size); the table says which applies.

        Example: kvroute bench --workload suite --engines 4 --load 0.5,0.8,1.0 --json bench.json
        """
    )

    @Option(help: "simulate (virtual time, in-process engines and the real routing core) or live (real time through gateways).") var mode = "simulate"
    @Option(help: "live: a gateway to send the workload through, as LABEL=URL or URL (repeatable; engines' caches are reset between gateways).") var gatewayUrl: [String] = []
    @Option(help: "live: the engines' base URLs, comma-separated (their /metrics give the engine-side hit rate and requests per engine).") var engineUrls: String?
    @Option(help: "Workloads, comma-separated: suite, agentic, rag, long-context, bursty, heterogeneous, failover, ramp, shared-prefix[:sglang|:llm-d], multi-turn, trace:FILE.") var workload = "shared-prefix"
    @Option(help: "Engines in the cluster.") var engines = 8
    @Option(help: "KV blocks per engine (default 34,560: an H100-80GB's for the modelled 3B model).") var numGpuBlocks: Int?
    @Option(help: "Maximum running sequences per engine (default 1024, vLLM's on an H100).") var maxNumSeqs: Int?
    @Option(help: "Comma-separated policies (default: all standard ones).") var policies: String?
    @Option(help: "Also compare this EndpointPickerConfig file.") var config: String?
    @Option(help: "Comma-separated loads as fractions of the measured capacity, e.g. 0.5,0.8,1.0,1.2 (simulate mode).") var load: String?
    @Option(help: "TTFT objective for goodput, in ms.") var ttftSloMs = BenchDefaults.ttftSLOMs
    @Option(help: "Policy the capacity search measures with.") var capacityPolicy = BenchDefaults.capacityPolicy
    @Option(help: "Scales the suite workloads' request counts (1 = their documented sizes).") var size = 1.0
    @Option(help: "Open-loop arrival rate, requests/s (shared-prefix, ramp).") var qps: Double?
    @Option(help: "Closed-loop clients in flight (multi-turn active users).") var concurrency: Int?
    @Option(help: "Trace replay speed-up factor.") var speedup = 1.0
    @Option(help: "Replay at most this many trace requests.") var maxRequests: Int?
    @Option(help: "Shared-prefix groups / multi-turn users (override the preset).") var groups: Int?
    @Option(help: "Prompts per group / rounds per user (override the preset).") var perGroup: Int?
    @Option(help: "Seed for workload generation and tie-breaks.") var seed: UInt64 = 1
    @Option(help: "Write the run (settings, kvroute version, every report) as JSON to this file.") var json: String?
    @Option(help: "Write SVG charts into this directory (one subdirectory per workload when there are several).") var plot: String?

    var workloadNames: [String] {
        workload.split(separator: ",").flatMap { part -> [String] in
            let name = part.trimmingCharacters(in: .whitespaces)
            return name == "suite" ? BenchScenario.suiteNames : [name]
        }
    }

    func makeScenario(_ name: String) throws -> BenchScenario {
        if let s = BenchScenario.named(name, size: size, seed: seed) { return s }
        let (kind, arg) = name.split(separator: ":", maxSplits: 1).map(String.init).splitFirst()
        switch kind {
        case "ramp":
            var w = RampWorkload()
            if let qps { w.interval = 1 / qps }
            w.seed = seed
            return BenchScenario(name: "ramp", models: "the cache-hit validation: one session repeating one prompt", workload: w)
        case "shared-prefix":
            guard var w = SharedPrefixWorkload.preset(arg ?? "sglang") else { throw ValidationError("unknown shared-prefix preset \(arg ?? "") (sglang, llm-d)") }
            if let groups { w.groups = groups }
            if let perGroup { w.promptsPerGroup = perGroup }
            w.qps = qps ?? 3.75 * Double(engines)
            w.seed = seed
            return BenchScenario(name: "shared-prefix", models: "SGLang's / llm-d-benchmark's shared-prefix sets", workload: w)
        case "multi-turn":
            var w = MultiTurnWorkload(seed: seed)
            if let groups { w.users = groups }
            if let perGroup { w.rounds = perGroup }
            w.activeUsers = concurrency ?? w.users
            return BenchScenario(name: "multi-turn", models: "production-stack's multi-round QA (closed loop)", workload: w)
        case "trace":
            guard let path = arg else { throw ValidationError("trace needs a file: --workload trace:FILE") }
            do {
                let w = try TraceWorkload(path: path, speedup: speedup, maxRequests: maxRequests)
                return BenchScenario(name: w.name, models: "a recorded Mooncake-format trace", workload: w)
            } catch let e as KVRouteError { throw ValidationError(e.message) }
        default:
            throw ValidationError("unknown workload \"\(name)\" (suite, \(BenchScenario.suiteNames.joined(separator: ", ")), ramp, shared-prefix, multi-turn, trace:FILE)")
        }
    }

    func loads() throws -> [Double]? {
        guard let load else { return nil }
        let values = load.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else { throw ValidationError("--load takes positive fractions, e.g. 0.5,0.8,1.0") }
        return values.compactMap { $0 }
    }

    func engineConfiguration() -> EngineConfiguration {
        var engine = EngineConfiguration(hashSeed: "0", seed: seed)
        if let numGpuBlocks { engine.numGPUBlocks = numGpuBlocks }
        if let maxNumSeqs { engine.maxNumSeqs = maxNumSeqs }
        return engine
    }

    /// The bench's own settings, for the JSON.
    func runSettings(loads: [Double]?, policies: [String]) -> [String: String] {
        let engine = engineConfiguration()
        var s = [
            "mode": mode, "workloads": workloadNames.joined(separator: ","), "engines": "\(engines)", "num_gpu_blocks": "\(engine.numGPUBlocks)",
            "block_size": "\(engine.blockSize)", "max_num_seqs": "\(engine.maxNumSeqs)", "max_num_batched_tokens": "\(engine.maxNumBatchedTokens)",
            "policies": policies.joined(separator: ","), "seed": "\(seed)", "size": "\(size)", "ttft_slo_ms": "\(ttftSloMs)",
            "command": CommandLine.arguments.dropFirst().joined(separator: " "),
        ]
        if let loads {
            s["loads"] = loads.map { "\($0)" }.joined(separator: ",")
            s["capacity_policy"] = capacityPolicy
        }
        return s
    }

    func run() async throws {
        guard mode == "simulate" || mode == "live" else { throw ValidationError("--mode must be simulate or live") }
        if mode == "live" { return try await runLive() }
        guard engines >= 1 else { throw ValidationError("--engines must be at least 1") }
        let loads = try loads()
        let scenarios = try workloadNames.map(makeScenario)
        var names = policies.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } } ?? BenchPolicy.standardNames
        if let config { names.append("config:" + config) }
        let resolved: [BenchPolicy], reference: BenchPolicy
        do {
            resolved = try names.map(BenchPolicy.named)
            reference = try BenchPolicy.named(capacityPolicy)
        } catch let e as KVRouteError { throw ValidationError(e.message) }
        let engine = engineConfiguration()
        do { try engine.validate() } catch { throw ValidationError(error.message) }
        let runner = BenchRunner(simulation: Simulation(engines: engines, engine: engine, seed: seed), policies: resolved, ttftSLOMs: ttftSloMs)
        let progress = Progress()
        var reports: [BenchReport] = []
        for scenario in scenarios {
            if loads != nil, scenario.workload.concurrency != nil {
                throw ValidationError("--load needs an open-loop workload; \(scenario.name) is closed loop (try the suite's workloads)")
            }
            var capacity: CapacitySearch.Result?
            if loads != nil {
                let search = CapacitySearch(simulation: runner.simulation(for: scenario), policy: reference)
                capacity = try search.run(scenario.workload) { p in
                    progress.show("\(scenario.name): capacity probe at \(String(format: "%.3g", p.scale))× nominal: \(p.saturated ? "saturated" : "keeps up")")
                }
            }
            let report = try runner.run(scenario, loads: loads, capacity: capacity) { policy, load, done in
                progress.show("\(scenario.name)\(load.map { String(format: " at load %.2f", $0) } ?? ""): \(policy): \(done) requests replayed")
            }
            progress.clear()
            print(report.table())
            print("")
            reports.append(report)
        }
        if let json {
            try BenchRun(settings: runSettings(loads: loads, policies: names), reports: reports).json().write(to: URL(fileURLWithPath: json))
            print("wrote \(json)")
        }
        if let plot {
            for r in reports {
                let dir = reports.count == 1 ? plot : (plot as NSString).appendingPathComponent(r.workload.replacingOccurrences(of: "/", with: "_"))
                for f in try BenchPlots.write(r, to: dir) { print("wrote \(f)") }
            }
        }
    }
}

/// One progress line on stderr, rewritten in place; silent unless stderr is a terminal.
final class Progress: Sendable {
    let enabled = isatty(STDERR_FILENO) != 0

    func show(_ line: String) {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K  \(line)".utf8))
    }

    func clear() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}

extension BenchCommand {
    func runLive() async throws {
        guard !gatewayUrl.isEmpty else { throw ValidationError("--mode live needs --gateway-url") }
        guard let engineUrls else { throw ValidationError("--mode live needs --engine-urls (the engines behind the gateway)") }
        guard load == nil else { throw ValidationError("--load is for simulate mode (live runs take --qps / the workload's rate)") }
        let engines = engineUrls.split(separator: ",").map(String.init)
        guard workloadNames.count == 1, let name = workloadNames.first else { throw ValidationError("--mode live runs one workload at a time") }
        let w = try makeScenario(name).workload
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(timeout: .init(connect: .seconds(5))))
        var results: [PolicyReport] = []
        var settings = w.settings
        let start = ContinuousClock.now
        let blocks = numGpuBlocks ?? EngineConfiguration().numGPUBlocks
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
                results.append(PolicyReport(run: run, ttftSLOMs: ttftSloMs, clusterBlocks: blocks * engines.count))
                settings["engine_hit_rate_\(label)"] = engineHit.map { String(format: "%.4f", $0) } ?? "n/a"
            }
        } catch {
            try? await client.shutdown()
            throw ValidationError("live run failed: \(error)")
        }
        try? await client.shutdown()
        let elapsed = ContinuousClock.now - start
        let report = BenchReport(
            workload: w.name, mode: "live", engines: engines.count, numGPUBlocks: blocks, maxNumSeqs: maxNumSeqs ?? EngineConfiguration().maxNumSeqs,
            blockSize: 16, settings: settings, ttftSLOMs: ttftSloMs, capacity: nil, results: results,
            wallSeconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
        print(report.table())
        if let json {
            try BenchRun(settings: runSettings(loads: nil, policies: results.map(\.policy)), reports: [report]).json().write(to: URL(fileURLWithPath: json))
            print("wrote \(json)")
        }
        if let plot { for f in try BenchPlots.write(report, to: plot) { print("wrote \(f)") } }
    }
}

extension Array where Element == String {
    func splitFirst() -> (String, String?) { (self.first ?? "", self.count > 1 ? self[1] : nil) }
}
