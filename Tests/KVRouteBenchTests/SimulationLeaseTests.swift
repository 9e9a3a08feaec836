import KVRouteCore
@testable import KVRouteBench
import KVRouteEngineSim
import KVRouteRouting
import Testing

/// `kvroute bench` routes in virtual time and ends every lease with what a front door would
/// observe, so policies that learn (predicted-latency) learn under the bench.
@Suite("Simulation: leases in virtual time")
struct SimulationLeaseTests {
    struct Recorder: LedgerState {
        var finished: [(admittedAt: Double, outcome: KVRouteCore.RequestOutcome)] = []
        mutating func learn(_ event: LedgerEvent) {
            if case .finished(let r, let o) = event { finished.append((r.admittedAt, o)) }
        }
    }

    @Test("every answer reaches the ledger with its virtual admission, first token, finish, usage and streamed")
    func outcomesInVirtualTime() throws {
        let key = LedgerKey<Recorder>("test/recorder")
        let router = try BenchPolicy.named("predicted-latency").makeRouter(seed: 1)
        router.scheduler.withLedger { $0.install(LedgerStateSpec(key) { Recorder() }) }
        let workload = MultiTurnWorkload(users: 4, rounds: 3, systemTokens: 200, questionTokens: 20, answerTokens: 16, userRate: 2, seed: 1)
        let run = try Simulation(engines: 2, engine: EngineConfiguration(hashSeed: "0", seed: 1)).run(workload, router: router, policyName: "predicted-latency")
        let seen = router.scheduler.withLedger { $0[key]?.finished ?? [] }
        #expect(seen.count == run.outcomes.count && !seen.isEmpty)
        let lastFinish = run.outcomes.map(\.finish).max() ?? 0
        for (admitted, o) in seen {
            #expect(o.streamed == true)
            let ttfb = try #require(o.timeToFirstByte)
            #expect(ttfb > 0 && admitted + ttfb <= o.finishedAt + 1e-9)
            #expect(o.finishedAt <= lastFinish + 1e-9)  // virtual time, not the wall clock
            #expect((o.promptTokens ?? 0) > 0 && (o.completionTokens ?? 0) > 0 && o.cachedTokens != nil)
        }
        // The model learned every engine it used.
        let keys = router.scheduler.profile.scorers.compactMap { ($0.scorer as? PredictedLatencyScorer)?.key }
        let learned = router.scheduler.withLedger { l in (0..<2).map { l[keys[0]]?.book.estimator(Simulation.address($0))?.observations ?? 0 } }
        #expect(learned.reduce(0, +) == run.outcomes.count)
        #expect(router.scheduler.prefixHitRatio > 0)
    }
}
