/// A request's latency objectives, from the headers llm-d's predicted-latency scheduling
/// reads: `x-slo-ttft-ms` and `x-slo-tpot-ms` (milliseconds), and the InferenceObjective it
/// belongs to, `x-gateway-inference-objective`, whose priority says whether it may be shed.
public struct RequestSLO: Sendable, Hashable {
    public static let ttftHeader = "x-slo-ttft-ms"
    public static let tpotHeader = "x-slo-tpot-ms"
    public static let objectiveHeader = "x-gateway-inference-objective"
    /// The request headers this needs (front doors pass these to the core).
    public static let headers = [ttftHeader, tpotHeader, objectiveHeader]

    /// Time-to-first-token objective, seconds.
    public var ttft: Double?
    /// Time-per-output-token objective, seconds.
    public var tpot: Double?
    /// The InferenceObjective named by the request.
    public var objective: String?

    public init(ttft: Double? = nil, tpot: Double? = nil, objective: String? = nil) {
        self.ttft = ttft
        self.tpot = tpot
        self.objective = objective
    }

    /// Reads lower-cased headers; a value that is not a positive finite number is ignored.
    public init(headers: [String: String]) {
        func seconds(_ name: String) -> Double? {
            guard let text = headers[name], let ms = Double(trimmed(text)), ms.isFinite, ms > 0 else { return nil }
            return ms / 1000
        }
        let objective = headers[Self.objectiveHeader].map(trimmed)
        self.init(ttft: seconds(Self.ttftHeader), tpot: seconds(Self.tpotHeader), objective: objective?.isEmpty == false ? objective : nil)
    }

    public var hasTargets: Bool { ttft != nil || tpot != nil }
}

private func trimmed(_ s: String) -> String {
    String(s.drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
}
