import Testing
@testable import KVRouteCore

@Suite("Routing ledger")
struct RoutingLedgerTests {
    final class Box: @unchecked Sendable {
        var events: [String] = []
    }

    /// Records what it learns, and whether the ledger let it change its storage in place
    /// (its box referenced by this copy alone).
    struct Recorder: LedgerState {
        var box = Box()
        var copiedWhileLearning = 0

        mutating func learn(_ event: LedgerEvent) {
            if !isKnownUniquelyReferenced(&box) { copiedWhileLearning += 1 }
            switch event {
            case .admitted(let r): box.events.append("admitted \(r.requestID)")
            case .moved(let r, _): box.events.append("moved \(r.requestID)")
            case .finished(let r, _): box.events.append("finished \(r.requestID)")
            case .endpointLeft(let e): box.events.append("left \(e)")
            }
        }
    }

    @Test("every state hears every event, in order, changed in place")
    func broadcast() {
        let keys = (0..<3).map { LedgerKey<Recorder>("recorder/\($0)") }
        var ledger = RoutingLedger()
        for k in keys { ledger.install(LedgerStateSpec(k) { Recorder() }) }
        ledger.admit(RequestRecord(requestID: "r", endpoint: ep(0), session: nil, admittedAt: 0, profile: "default", context: context()))
        ledger.move(requestID: "r", to: ep(1))
        ledger.finish(requestID: "r", outcome: RequestOutcome(servedBy: nil))
        ledger.endpointLeft(ep(0))
        for k in keys {
            let s = ledger[k]
            #expect(s?.box.events == ["admitted r", "moved r", "finished r", "left \(ep(0))"])
            #expect(s?.copiedWhileLearning == 0)
        }
    }
}
