import Testing
@testable import KVRouteCore

/// The predicted-latency profile wired through the Scheduler: a refusal stands as 429's
/// `.noCapacity`, the state learns from streamed and whole answers, the prefix gauge sees
/// its index, and the built-ins name it.
@Suite("Predicted latency: end to end in the core")
struct PredictedLatencyEndToEndTests {
    static let a = EndpointAddress(host: "10.0.0.1", port: 8000)
    static let b = EndpointAddress(host: "10.0.0.2", port: 8000)

    /// The profile with shedding, under kvroute's profile handler (which falls back to the
    /// consistent hash when a profile fails).
    static let sheddingYAML = """
    plugins:
    - type: single-profile-handler
    - type: predicted-latency-scorer
    - type: predicted-latency-picker
      parameters:
        noHeadroomPolicy: shed
        objectivePriorities: {batch: -1, chat: 0}
    schedulingProfiles:
    - name: default
      plugins:
      - pluginRef: predicted-latency-scorer
      - pluginRef: predicted-latency-picker
    """

    static func request(_ id: String, headers: [String: String] = [:]) -> InferenceRequest {
        InferenceRequest(requestID: id, model: "m", prompt: .text(String(repeating: "a shared preamble ", count: 64) + id), headers: headers)
    }

    @Test("a sheddable request no endpoint can serve in time is refused with .noCapacity; no fallback profile takes it, nothing stays in flight")
    func refusalStands() throws {
        let scheduler = try Scheduler(config: EndpointPickerConfig.load(yaml: Self.sheddingYAML), randomSeed: 1)
        let candidates = [EndpointSnapshot(address: Self.a), EndpointSnapshot(address: Self.b)]
        let impossible = ["x-slo-ttft-ms": "0.001", "x-gateway-inference-objective": "batch"]
        let error = #expect(throws: KVRouteError.self) { try scheduler.schedule(Self.request("shed", headers: impossible), candidates: candidates, now: 1) }
        #expect(error?.code == .noCapacity)
        #expect(scheduler.inFlightTotal == 0)
        // Not sheddable: best effort; no SLO: the best score.
        let chat = try scheduler.schedule(Self.request("chat", headers: ["x-slo-ttft-ms": "0.001", "x-gateway-inference-objective": "chat"]), candidates: candidates, now: 1)
        #expect(chat.fallbackReason == nil)
        let plain = try scheduler.schedule(Self.request("plain"), candidates: candidates, now: 1)
        #expect(plain.profile == "default")
        #expect(scheduler.inFlightTotal == 2)
    }

    @Test("the outcome a state learns: a streamed answer's first byte is its TTFT, a whole answer's is not, unknown falls back to timing",
          arguments: [
              // (ttfb, total, tokens, streamed, TTFT row kept)
              (0.5, 0.5001, 10, true as Bool?, true),
              (0.5, 0.5001, 10, nil, false),
              (0.5, 0.5001, 10, false, false),
              (0.1, 0.9, 10, false, false),
              (0.1, 0.9, 10, nil, true),
          ])
    func outcomeMapping(_ c: (Double, Double, Int, Bool?, Bool)) {
        let o = RequestOutcome(servedBy: Self.a, result: .answered(status: 200), finishedAt: c.1, timeToFirstByte: c.0, streamed: c.3, completionTokens: c.2)
        let mapped = PredictedLatencyState.outcome(o, total: c.1)
        #expect((mapped.firstByteSeconds != nil) == c.4)
    }

    @Test("the ledger state learns from streamed answers and from whole ones")
    func learnsFromBoth() throws {
        let scheduler = try Scheduler(config: .builtIn("predicted-latency")!, randomSeed: 1)
        let keys = scheduler.profile.scorers.compactMap { ($0.scorer as? PredictedLatencyScorer)?.key }
        let key = try #require(keys.first)
        func observations() -> Int { scheduler.withLedger { $0[key]?.book.estimator(Self.a)?.observations ?? 0 } }
        var now = 0.0
        for (i, streamed) in [true, false, true, false].enumerated() {
            let r = try scheduler.schedule(Self.request("r\(i)"), candidates: [EndpointSnapshot(address: Self.a)], now: now)
            let before = observations()
            let total = 0.8
            scheduler.requestFinished(requestID: "r\(i)", outcome: RequestOutcome(
                servedBy: r.primary, result: .answered(status: 200), finishedAt: now + total,
                timeToFirstByte: streamed ? 0.05 : total, streamed: streamed, promptTokens: 300, cachedTokens: 0, completionTokens: 50))
            #expect(observations() > before, "streamed: \(streamed)")
            now += 1
        }
        #expect(scheduler.inFlightTotal == 0)
    }

    @Test("a queued engine admits at its busy service rate: the wait is the waiting count times the interval between answers while busy")
    func admissionWait() throws {
        let scheduler = try Scheduler(config: .builtIn("predicted-latency")!, randomSeed: 1)
        let keys = scheduler.profile.scorers.compactMap { ($0.scorer as? PredictedLatencyScorer)?.key }
        let key = try #require(keys.first)
        for i in 0..<3 { _ = try scheduler.schedule(Self.request("q\(i)"), candidates: [EndpointSnapshot(address: Self.a)], now: 0) }
        for (i, t) in [1.0, 1.5, 2.0].enumerated() {  // the last answer leaves the engine idle: not a busy interval
            scheduler.requestFinished(requestID: "q\(i)", outcome: RequestOutcome(
                servedBy: Self.a, result: .answered(status: 200), finishedAt: t, promptTokens: 300, completionTokens: 20))
        }
        let state = try #require(scheduler.withLedger { $0[key] })
        #expect(state.busyInterval(Self.a) == 0.5)
        #expect(state.admissionWait(EndpointSnapshot(address: Self.a, waitingRequests: 4)) == 2)
        #expect(state.admissionWait(EndpointSnapshot(address: Self.a)) == 0)
        #expect(state.admissionWait(EndpointSnapshot(address: Self.b, waitingRequests: 4)) == 0)  // not measured yet

        // Scored: the engine whose queue takes 2 s to drain is predicted to answer later.
        var context = SchedulingContext(request: Self.request("next"), now: 3)
        let scorer = try #require(scheduler.profile.scorers.compactMap { $0.scorer as? PredictedLatencyScorer }.first)
        let ledger = scheduler.withLedger { $0 }
        let scores = scorer.score([EndpointSnapshot(address: Self.a, waitingRequests: 4), EndpointSnapshot(address: Self.b)], context: &context, ledger: ledger)
        #expect(scores[1] > scores[0])
        let note = try #require(context[note: PredictedLatencyScorer.note])
        #expect((note.candidates[Self.a]?.prediction.ttft ?? 0) >= 2)
    }

    @Test("the prefix hit ratio and index size include predicted-latency-scorer's index")
    func prefixGauges() throws {
        let scheduler = try Scheduler(config: .builtIn("predicted-latency")!, randomSeed: 1)
        for i in 0..<3 {
            let r = try scheduler.schedule(Self.request("same"), candidates: [EndpointSnapshot(address: Self.a)], now: Double(i))
            scheduler.requestFinished(requestID: "same", servedBy: r.primary)
        }
        #expect(scheduler.prefixIndexSize > 0)
        #expect(scheduler.prefixHitRatio > 0)
    }

    @Test("built-ins: predicted-latency and kvroute-v1 (the hand-tuned profile) by name")
    func builtIns() throws {
        let pl = try #require(EndpointPickerConfig.builtIn("predicted-latency"))
        #expect(pl.name == "predicted-latency")
        let v1 = try #require(EndpointPickerConfig.builtIn("kvroute-v1"))
        #expect(v1.name == "kvroute-v1")
        #expect(EndpointPickerConfig.builtInNames.contains("predicted-latency"))
        #expect(EndpointPickerConfig.builtInNames.contains("kvroute-v1"))
    }
}
