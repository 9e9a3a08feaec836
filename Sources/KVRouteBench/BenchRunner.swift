import Foundation
import KVRouteEngineSim

/// Defaults the command, the report and the documentation share.
public enum BenchDefaults {
    /// The TTFT objective for goodput: about the wait a chat user accepts before the first
    /// word; an uncached 50k-token prompt spends it on prefill alone with this engine model.
    public static let ttftSLOMs = 2_000.0
    /// The policy the capacity search measures with: balances load and ignores caches, so
    /// the capacity is the cluster's, not a prefix-aware policy's.
    public static let capacityPolicy = "least-load"
}

/// Runs a scenario under several policies in simulate mode, at one or several loads, and
/// assembles the report.
public struct BenchRunner: Sendable {
    public var simulation: Simulation
    public var policies: [BenchPolicy]
    public var ttftSLOMs = BenchDefaults.ttftSLOMs

    public init(simulation: Simulation, policies: [BenchPolicy], ttftSLOMs: Double = BenchDefaults.ttftSLOMs) {
        self.simulation = simulation
        self.policies = policies
        self.ttftSLOMs = ttftSLOMs
    }

    /// The simulation of a scenario's cluster.
    public func simulation(for scenario: BenchScenario) -> Simulation {
        var s = simulation
        s.slowdowns = scenario.slowdowns
        s.failure = scenario.failure
        return s
    }

    /// One pass at the workload's own rate.
    public func run(_ workload: any Workload, progress: (String, Int) -> Void = { _, _ in }) throws -> BenchReport {
        try run(BenchScenario(name: workload.name, models: "", workload: workload), loads: nil, capacity: nil) { p, _, n in progress(p, n) }
    }

    /// Every policy at every load (fractions of `capacity`); `loads` nil: one pass at the
    /// workload's own rate. `progress` gets the policy, the load and the requests finished.
    public func run(_ scenario: BenchScenario, loads: [Double]?, capacity: CapacitySearch.Result?,
                    progress: (String, Double?, Int) -> Void = { _, _, _ in }) throws -> BenchReport {
        let start = ContinuousClock.now
        let bs = simulation.engine.blockSize
        let clusterBlocks = simulation.engine.numGPUBlocks * simulation.engines
        var results: [PolicyReport] = []
        for load in loads.map({ $0.map(Optional.some) }) ?? [nil] {
            let sim = simulation(for: scenario)
            let workload = load.map { scenario.workload.scaled(by: $0 * (capacity?.rateScale ?? 1)) } ?? scenario.workload
            for p in policies {
                let run = try sim.run(workload, policy: p) { progress(p.name, load, $0) }
                results.append(PolicyReport(run: run, load: load, ttftSLOMs: ttftSLOMs, blockSize: bs, clusterBlocks: clusterBlocks))
            }
        }
        let elapsed = ContinuousClock.now - start
        var settings = scenario.workload.settings
        for (e, f) in scenario.slowdowns { settings["engine_\(e)_slowdown"] = "\(f)" }
        if let f = scenario.failure { settings["engine_\(f.engine)_fails_at"] = "\(Int(f.atFraction * 100))% of arrivals" }
        return BenchReport(
            workload: scenario.name, models: scenario.models, mode: "simulate", engines: simulation.engines,
            numGPUBlocks: simulation.engine.numGPUBlocks, maxNumSeqs: simulation.engine.maxNumSeqs, blockSize: bs, settings: settings,
            ttftSLOMs: ttftSLOMs, capacity: capacity, results: results,
            wallSeconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
    }
}
