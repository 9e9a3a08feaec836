/// `predicted-latency-picker`: SLO-aware picking over `predicted-latency-scorer`'s
/// predictions. A request with `x-slo-ttft-ms` / `x-slo-tpot-ms` goes to the best-scored
/// endpoint whose predicted latency quantile (`sloQuantile`, p90 by default) meets both;
/// when none does, `noHeadroomPolicy` decides: `best-effort` sends it to the endpoint that
/// misses by the least, `shed` refuses it (429) when its InferenceObjective
/// (`x-gateway-inference-objective`) has a negative priority in `objectivePriorities`, and
/// gives the others best effort. Without SLO headers it is `max-score-picker`.
///
/// Parameters (see README.md): `noHeadroomPolicy`, `objectivePriorities`, `sloQuantile`,
/// `maxNumOfEndpoints`.
public struct PredictedLatencyPicker: EndpointPicker {
    public let type = "predicted-latency-picker"
    public let name: String
    public let policy: SLOPolicy
    public let maxNumOfEndpoints: Int

    /// Set when the picker refused the request (it then returns no endpoint): the
    /// Scheduler's rejection note, so the `.noCapacity` error stands (429).
    public static let rejection = SchedulingContext.rejection

    public init(name: String, policy: SLOPolicy = SLOPolicy(), maxNumOfEndpoints: Int = 1) {
        self.name = name
        self.policy = policy
        self.maxNumOfEndpoints = max(1, maxNumOfEndpoints)
    }

    static func make(name: String, parameters p: inout PluginParameters) throws -> PredictedLatencyPicker {
        let text = try p.string("noHeadroomPolicy", default: SLOPolicy.NoHeadroom.bestEffort.rawValue) ?? ""
        guard let noHeadroom = SLOPolicy.NoHeadroom(rawValue: text) else {
            throw p.bad("noHeadroomPolicy", "must be one of \(SLOPolicy.NoHeadroom.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(text)\"")
        }
        var priorities: [String: Int] = [:]
        for (objective, value) in try p.stringMap("objectivePriorities") {
            guard let n = Int(value) else { throw p.bad("objectivePriorities", "must map objective names to integers, got \"\(value)\" for \"\(objective)\"") }
            priorities[objective] = n
        }
        let quantile = try p.double("sloQuantile", default: 0.9, min: 0.5)
        guard quantile < 1 else { throw p.bad("sloQuantile", "must be below 1, got \(quantile)") }
        let n = try p.int("maxNumOfEndpoints", default: 1, min: 1)
        return PredictedLatencyPicker(name: name, policy: SLOPolicy(noHeadroom: noHeadroom, objectivePriorities: priorities, quantile: quantile), maxNumOfEndpoints: n)
    }

    public func pick(_ scored: [(endpoint: EndpointSnapshot, score: Double)], context: inout SchedulingContext, ledger: RoutingLedger,
                     using rng: inout SeededGenerator) -> [EndpointAddress] {
        var kept = scored
        let slo = RequestSLO(headers: context.request.headers)
        if slo.hasTargets, let note = context[note: PredictedLatencyScorer.note] {
            let known = scored.filter { note.candidates[$0.endpoint.address] != nil }
            if !known.isEmpty {
                switch policy.verdict(known.map { note.candidates[$0.endpoint.address]!.prediction }, slo: slo) {
                case .keep(let indices):
                    kept = indices.map { known[$0] }
                case .shed:
                    context[note: Self.rejection] = KVRouteError(
                        code: .noCapacity,
                        message: "no endpoint is predicted to meet the request's SLO and its objective \"\(slo.objective ?? "")\" is sheddable")
                    return []
                }
            }
        }
        kept.shuffle(using: &rng)
        return kept.enumerated().sorted { a, b in
            a.element.score != b.element.score ? a.element.score > b.element.score : a.offset < b.offset
        }.prefix(maxNumOfEndpoints).map(\.element.endpoint.address)
    }
}
