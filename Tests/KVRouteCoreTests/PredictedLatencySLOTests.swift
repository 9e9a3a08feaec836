import Testing
@testable import KVRouteCore

@Suite("Predicted latency: SLOs")
struct PredictedLatencySLOTests {
    struct HeaderCase: Sendable {
        var headers: [String: String]
        var slo: RequestSLO
    }

    @Test(arguments: [
        HeaderCase(headers: [:], slo: RequestSLO()),
        HeaderCase(headers: ["x-slo-ttft-ms": "500", "x-slo-tpot-ms": " 20 "], slo: RequestSLO(ttft: 0.5, tpot: 0.02)),
        HeaderCase(headers: ["x-slo-ttft-ms": "fast", "x-slo-tpot-ms": "-5"], slo: RequestSLO()),
        HeaderCase(headers: ["x-slo-ttft-ms": "inf", "x-gateway-inference-objective": "batch"], slo: RequestSLO(objective: "batch")),
        HeaderCase(headers: ["x-slo-ttft-ms": "250.5", "x-gateway-inference-objective": "  "], slo: RequestSLO(ttft: 0.2505)),
    ])
    func readsHeaders(_ c: HeaderCase) {
        #expect(RequestSLO(headers: c.headers) == c.slo)
    }

    @Test(arguments: [(0.5, 0.0), (0.9, 1.281552), (0.99, 2.326348), (0.999, 3.090232), (0.2, 0.0)])
    func normalQuantile(_ p: Double, _ z: Double) {
        #expect(abs(SLOPolicy.normalQuantile(p) - z) < 1e-5)
    }

    struct VerdictCase: Sendable, CustomTestStringConvertible {
        var label: String
        var slo: RequestSLO
        var policy: SLOPolicy
        var deviation = 0.0
        var verdict: SLOVerdict
        var testDescription: String { label }
    }

    static let priorities = ["batch": -1, "chat": 5]

    /// Endpoint 0: TTFT 100 ms, TPOT 10 ms; endpoint 1: TTFT 300 ms, TPOT 5 ms.
    static let verdictCases: [VerdictCase] = [
        .init(label: "no SLO keeps all", slo: RequestSLO(), policy: SLOPolicy(), verdict: .keep([0, 1])),
        .init(label: "TTFT SLO keeps the fast starter", slo: RequestSLO(ttft: 0.2), policy: SLOPolicy(), verdict: .keep([0])),
        .init(label: "TPOT SLO keeps the fast decoder", slo: RequestSLO(tpot: 0.008), policy: SLOPolicy(), verdict: .keep([1])),
        // Misses: endpoint 0 by max(0.5, 1.25) = 1.25, endpoint 1 by max(1.5, 0.625) = 1.5.
        .init(label: "none meets both: best effort picks the least miss", slo: RequestSLO(ttft: 0.2, tpot: 0.008),
              policy: SLOPolicy(), verdict: .keep([0])),
        .init(label: "shed policy sheds a sheddable objective", slo: RequestSLO(ttft: 0.2, tpot: 0.008, objective: "batch"),
              policy: SLOPolicy(noHeadroom: .shed, objectivePriorities: priorities), verdict: .shed),
        .init(label: "shed policy serves a positive priority", slo: RequestSLO(ttft: 0.2, tpot: 0.008, objective: "chat"),
              policy: SLOPolicy(noHeadroom: .shed, objectivePriorities: priorities), verdict: .keep([0])),
        .init(label: "shed policy serves a request without objective", slo: RequestSLO(ttft: 0.2, tpot: 0.008),
              policy: SLOPolicy(noHeadroom: .shed, objectivePriorities: priorities), verdict: .keep([0])),
        .init(label: "best effort never sheds", slo: RequestSLO(ttft: 0.05, objective: "batch"),
              policy: SLOPolicy(noHeadroom: .bestEffort, objectivePriorities: priorities), verdict: .keep([0])),
        // p90 with 20 % deviation: 100 ms × (1 + 1.2816 × 0.2) = 125.6 ms > 120 ms.
        .init(label: "the quantile margin counts", slo: RequestSLO(ttft: 0.12, objective: "batch"),
              policy: SLOPolicy(noHeadroom: .shed, objectivePriorities: priorities), deviation: 0.2, verdict: .shed),
        .init(label: "the median has no margin", slo: RequestSLO(ttft: 0.12, objective: "batch"),
              policy: SLOPolicy(noHeadroom: .shed, objectivePriorities: priorities, quantile: 0.5), deviation: 0.2, verdict: .keep([0])),
    ]

    @Test(arguments: verdictCases)
    func verdicts(_ c: VerdictCase) {
        let predictions = [
            LatencyPrediction(ttft: 0.1, tpot: 0.01, relativeDeviation: c.deviation),
            LatencyPrediction(ttft: 0.3, tpot: 0.005, relativeDeviation: c.deviation),
        ]
        #expect(c.policy.verdict(predictions, slo: c.slo) == c.verdict)
    }

    static let a = EndpointAddress(host: "10.0.2.1", port: 8000)
    static let b = EndpointAddress(host: "10.0.2.2", port: 8000)

    /// The picker over a scorer's note: `a` starts fast but decodes slowly, `b` the reverse;
    /// `b` has the higher score.
    func pick(_ picker: PredictedLatencyPicker, headers: [String: String]) -> ([EndpointAddress], KVRouteError?) {
        var context = SchedulingContext(request: InferenceRequest(requestID: "r", model: "m", prompt: .text("x"), headers: headers))
        let f = LatencyFeatures(prefillTokensAhead: 0, decodingSequences: 0, batchSequences: 1)
        context[note: PredictedLatencyScorer.note] = .init(promptCharacters: 1, candidates: [
            Self.a: .init(queued: f, ownUncachedTokens: 0, prediction: .init(ttft: 0.1, tpot: 0.01, relativeDeviation: 0), cost: 0.3),
            Self.b: .init(queued: f, ownUncachedTokens: 0, prediction: .init(ttft: 0.3, tpot: 0.005, relativeDeviation: 0), cost: 0.2),
        ])
        var rng = SeededGenerator(seed: 1)
        let picked = picker.pick([(EndpointSnapshot(address: Self.a), 0.6), (EndpointSnapshot(address: Self.b), 1.0)],
                                 context: &context, ledger: RoutingLedger(), using: &rng)
        return (picked, context[note: PredictedLatencyPicker.rejection])
    }

    @Test func pickerKeepsEndpointsWithHeadroom() {
        let picker = PredictedLatencyPicker(name: "p")
        #expect(pick(picker, headers: [:]).0 == [Self.b])  // no SLO: best score
        #expect(pick(picker, headers: ["x-slo-ttft-ms": "200"]).0 == [Self.a])  // only `a` starts in time
        #expect(pick(picker, headers: ["x-slo-ttft-ms": "50"]).0 == [Self.a])  // none: the least miss
    }

    @Test func pickerShedsSheddableRequestsWithoutHeadroom() {
        let picker = PredictedLatencyPicker(name: "p", policy: SLOPolicy(noHeadroom: .shed, objectivePriorities: Self.priorities))
        let (picked, rejection) = pick(picker, headers: ["x-slo-ttft-ms": "50", "x-gateway-inference-objective": "batch"])
        #expect(picked.isEmpty)
        #expect(rejection?.code == .noCapacity)
        let (served, none) = pick(picker, headers: ["x-slo-ttft-ms": "50", "x-gateway-inference-objective": "chat"])
        #expect(served == [Self.a] && none == nil)
    }

    @Test func profileLoads() throws {
        let config = try EndpointPickerConfig.load(yaml: EndpointPickerConfig.predictedLatencyYAML)
        let scheduler = try Scheduler(config: config, randomSeed: 1)
        let r = try scheduler.schedule(
            InferenceRequest(requestID: "r", model: "m", prompt: .text("hello")),
            candidates: [EndpointSnapshot(address: Self.a, waitingRequests: 5), EndpointSnapshot(address: Self.b)], now: 1)
        #expect(r.primary == Self.b)
    }

    @Test(arguments: [
        "noHeadroomPolicy: drop",
        "sloQuantile: 1.5",
        "objectivePriorities: {batch: low}",
    ])
    func rejectsBadParameters(_ parameters: String) {
        let yaml = """
        plugins:
        - type: predicted-latency-scorer
        - type: predicted-latency-picker
          parameters: {\(parameters)}
        schedulingProfiles:
        - name: default
          plugins:
          - pluginRef: predicted-latency-scorer
          - pluginRef: predicted-latency-picker
        """
        #expect(throws: KVRouteError.self) { try EndpointPickerConfig.load(yaml: yaml) }
    }
}
