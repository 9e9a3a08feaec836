import KVRouteCore
import KVRouteRouting
import Synchronization
import Testing

/// What a lease tells the ledger at the end: the time to first byte, whether the answer
/// streamed, the usage, on the caller's clock (a simulation's virtual one included).
@Suite("RoutingLease outcomes")
struct RoutingLeaseOutcomeTests {
    /// Records every finished request's admission time and outcome.
    struct Recorder: LedgerState {
        var finished: [(admittedAt: Double, outcome: RequestOutcome)] = []
        mutating func learn(_ event: LedgerEvent) {
            if case .finished(let r, let o) = event { finished.append((r.admittedAt, o)) }
        }
    }

    static let key = LedgerKey<Recorder>("test/recorder")
    static let endpoint = EndpointAddress(host: "10.0.0.1", port: 8000)

    static func router() throws -> RequestRouter {
        let router = try RequestRouter(
            configuration: .init(pickerConfig: .builtIn("predicted-latency")!, seed: 1, maxAttempts: 1),
            metrics: PickerMetrics(poolName: "test"), snapshots: { [EndpointSnapshot(address: endpoint)] })
        router.scheduler.withLedger { $0.install(LedgerStateSpec(key) { Recorder() }) }
        return router
    }

    static func recorded(_ router: RequestRouter) -> [(admittedAt: Double, outcome: RequestOutcome)] {
        router.scheduler.withLedger { $0[key]?.finished ?? [] }
    }

    @Test("virtual time: admission at `started`, first byte and finish at the instants given, usage and streamed passed on")
    func virtualTime() throws {
        let router = try Self.router()
        let lease = try router.route(InferenceRequest(requestID: "r", model: "m", prompt: .text("hello")), started: router.instant(atSeconds: 100))
        lease.firstByte(at: router.instant(atSeconds: 100.25))
        lease.finished(
            servedBy: lease.primary, outcome: .answered(status: 200), usage: ResponseUsage(promptTokens: 30, completionTokens: 7, cachedTokens: 16),
            streamed: true, at: router.instant(atSeconds: 101.5))
        let r = try #require(Self.recorded(router).first)
        #expect(abs(r.admittedAt - 100) < 1e-6)
        #expect(abs(r.outcome.finishedAt - 101.5) < 1e-6)
        #expect(abs((r.outcome.timeToFirstByte ?? -1) - 0.25) < 1e-6)
        #expect(r.outcome.streamed == true)
        #expect(r.outcome.promptTokens == 30 && r.outcome.cachedTokens == 16 && r.outcome.completionTokens == 7)
    }

    @Test("a whole answer: streamed false; unknown when the front door cannot tell")
    func streamedFlag() throws {
        let router = try Self.router()
        for streamed in [false, nil] as [Bool?] {
            let lease = try router.route(InferenceRequest(requestID: "r", model: "m", prompt: .text("hello")))
            lease.firstByte()
            lease.finished(servedBy: lease.primary, outcome: .answered(status: 200), streamed: streamed)
        }
        let outcomes = Self.recorded(router).map(\.outcome)
        #expect(outcomes.map(\.streamed) == [false, nil])
        #expect(outcomes.allSatisfy { $0.timeToFirstByte != nil })
    }
}
