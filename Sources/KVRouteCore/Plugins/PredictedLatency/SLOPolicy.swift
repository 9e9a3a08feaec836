import Foundation

/// What a request's SLO does to the candidates.
public enum SLOVerdict: Sendable, Hashable {
    /// Keep these candidates (indices into the predictions).
    case keep([Int])
    /// Refuse the request: no endpoint is predicted to meet its SLO and it may be shed.
    case shed
}

/// Keeps the endpoints predicted to meet a request's SLO, and decides what happens when
/// none is.
public struct SLOPolicy: Sendable, Hashable {
    /// What to do when no endpoint has headroom.
    public enum NoHeadroom: String, Sendable, Hashable, CaseIterable {
        /// Send the request to the endpoint predicted to miss its SLO by the least.
        case bestEffort = "best-effort"
        /// Refuse a sheddable request (429); others get best effort.
        case shed
    }

    public var noHeadroom: NoHeadroom
    /// InferenceObjective priorities by name, as the InferenceObjective resources would say;
    /// a request is sheddable when its objective's priority is negative (Gateway API
    /// Inference Extension semantics). Unknown or absent objectives have priority 0.
    public var objectivePriorities: [String: Int]
    /// The quantile of the predicted latency compared with the SLO (0.9: p90, as llm-d).
    public var quantile: Double
    /// Normal deviate of `quantile`.
    public let deviate: Double

    public init(noHeadroom: NoHeadroom = .bestEffort, objectivePriorities: [String: Int] = [:], quantile: Double = 0.9) {
        self.noHeadroom = noHeadroom
        self.objectivePriorities = objectivePriorities
        self.quantile = quantile
        self.deviate = Self.normalQuantile(quantile)
    }

    public func isSheddable(_ slo: RequestSLO) -> Bool {
        slo.objective.flatMap { objectivePriorities[$0] }.map { $0 < 0 } ?? false
    }

    /// How far a prediction is from the SLO: the larger ratio of predicted quantile to
    /// target over TTFT and TPOT (≤ 1: meets it).
    public func load(_ p: LatencyPrediction, _ slo: RequestSLO) -> Double {
        var worst = 0.0
        if let t = slo.ttft { worst = max(worst, p.upper(p.ttft, z: deviate) / t) }
        if let t = slo.tpot { worst = max(worst, p.upper(p.tpot, z: deviate) / t) }
        return worst
    }

    public func verdict(_ predictions: [LatencyPrediction], slo: RequestSLO) -> SLOVerdict {
        guard slo.hasTargets, !predictions.isEmpty else { return .keep(Array(predictions.indices)) }
        var meets: [Int] = []
        var best = 0
        var bestLoad = Double.infinity
        for (i, p) in predictions.enumerated() {
            let l = load(p, slo)
            if l <= 1 { meets.append(i) }
            if l < bestLoad { best = i; bestLoad = l }
        }
        if !meets.isEmpty { return .keep(meets) }
        if noHeadroom == .shed, isSheddable(slo) { return .shed }
        return .keep([best])
    }

    /// The standard normal quantile (Acklam's rational approximation, relative error
    /// below 1.2·10⁻⁹), clamped to (0.5, 0.9999]: below the median there is no margin.
    static func normalQuantile(_ p: Double) -> Double {
        let p = min(max(p, 0.5), 0.9999)
        if p == 0.5 { return 0 }
        let a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00]
        let b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01]
        let c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00]
        let d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
        if p <= 0.97575 {
            let q = p - 0.5, r = q * q
            return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
                / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
        }
        let q = (-2 * log(1 - p)).squareRoot()
        return -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5])
            / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    }
}
