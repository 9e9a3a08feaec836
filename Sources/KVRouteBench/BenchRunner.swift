import Foundation
import KVRouteEngineSim

/// Runs one workload under several policies in simulate mode and assembles the report.
public struct BenchRunner: Sendable {
    public var simulation: Simulation
    public var policies: [BenchPolicy]

    public init(simulation: Simulation, policies: [BenchPolicy]) {
        self.simulation = simulation
        self.policies = policies
    }

    public func run(_ workload: any Workload, progress: (String, Int) -> Void = { _, _ in }) throws -> BenchReport {
        let start = ContinuousClock.now
        var results: [PolicyReport] = []
        var issued: [(tokens: [UInt32], answer: [UInt32])] = []
        for p in policies {
            let run = try simulation.run(workload, policy: p) { progress(p.name, $0) }
            if issued.isEmpty { issued = run.issued }
            results.append(PolicyReport(run: run))
        }
        let bs = simulation.engine.blockSize
        let elapsed = ContinuousClock.now - start
        return BenchReport(
            workload: workload.name, mode: "simulate", engines: simulation.engines, numGPUBlocks: simulation.engine.numGPUBlocks,
            blockSize: bs, settings: workload.settings,
            upperBoundHitRate: Bounds.upperBound(issued, blockSize: bs),
            clusterCapacityHitRate: Bounds.clusterCapacity(issued, blockSize: bs, capacity: simulation.engine.numGPUBlocks * simulation.engines),
            results: results,
            wallSeconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
    }
}
