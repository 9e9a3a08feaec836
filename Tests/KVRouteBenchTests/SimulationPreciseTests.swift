import KVRouteCore
@testable import KVRouteBench
import KVRouteEngineSim
import Testing

/// `kvroute bench --policies precise`: the in-process engines' own KV events feed the precise
/// index, so the precise scorer sees what each engine holds.
@Suite("Simulation: precise prefix-cache routing")
struct SimulationPreciseTests {
    static func hitRate(_ run: PolicyRun) -> Double {
        Double(run.outcomes.map(\.cachedTokens).reduce(0, +)) / Double(max(1, run.outcomes.map(\.promptTokens).reduce(0, +)))
    }

    @Test("precise routing finds the engine holding each group's prefix: its hit rate is the shared prefix's")
    func preciseFollowsEngineEvents() throws {
        let w = SharedPrefixWorkload(groups: 8, promptsPerGroup: 6, prefixTokens: 256, questionTokens: 16, outputTokens: 8, qps: 8, seed: 1)
        let sim = Simulation(engines: 4, engine: EngineConfiguration(numGPUBlocks: 4_000, maxNumSeqs: 64, hashSeed: "0"))
        let precise = try sim.run(w, policy: try .named("precise"))
        let random = try sim.run(w, policy: try .named("random"))
        #expect(precise.outcomes.count == 48 && random.outcomes.count == 48)
        // 5 of a group's 6 prompts can reuse its 256-token prefix (16 blocks): at best 5·256 / 6·272.
        let best = 5.0 * 256 / (6 * 272)
        #expect(Self.hitRate(precise) > 0.9 * best, "precise \(Self.hitRate(precise)), random \(Self.hitRate(random))")
        #expect(Self.hitRate(precise) > Self.hitRate(random) + 0.1)
    }
}
