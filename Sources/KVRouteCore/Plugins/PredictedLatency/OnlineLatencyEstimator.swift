/// One finished request as the estimator learns from it.
public struct LatencyObservation: Sendable, Hashable {
    /// The endpoint's state when the request was placed, with this request's own uncached
    /// prompt tokens as the engine reported them (prompt − cached from `usage`).
    public var features: LatencyFeatures
    /// Completion tokens the engine reported.
    public var outputTokens: Int
    /// Seconds to the first byte of a streamed answer; nil when the answer came whole (the
    /// first byte is then the last, so only the total is known).
    public var firstTokenSeconds: Double?
    /// Seconds from routing to the last byte.
    public var totalSeconds: Double

    public init(features: LatencyFeatures, outputTokens: Int, firstTokenSeconds: Double?, totalSeconds: Double) {
        self.features = features
        self.outputTokens = outputTokens
        self.firstTokenSeconds = firstTokenSeconds
        self.totalSeconds = totalSeconds
    }
}

/// Learns one endpoint's ``LatencyCoefficients`` online, by robust recursive least squares
/// on multiplicative corrections to the prior.
///
/// The parameters are five factors θ (one per coefficient, starting at 1), so every feature
/// is measured in "prior seconds" and the parameters share one scale whatever the units.
/// Each observation gives one or two rows:
/// - streamed: TTFT = θ·(a·U, b·D, c, 0, 0), and the decode time (total − TTFT) =
///   θ·(0, 0, 0, d·(n−1), e·(n−1)·B);
/// - answered whole: total = the sum of both rows (so non-streaming traffic teaches too).
///
/// A row is divided by what the prior predicts for it, so the fit minimises relative error
/// (a 10 ms miss on a 20 ms TTFT weighs what a 1 s miss on a 2 s one does). The residual is
/// Huber-clipped at three running deviations, so a stalled connection or a preempted
/// request does not yank the model; old rows are forgotten with factor λ, so an engine
/// that slows down is followed; each direction's variance is capped so idle ones cannot
/// wind up; factors stay in [1/50, 50] so a prediction is always positive and finite.
///
/// Update and prediction allocate nothing: vectors are SIMD, the covariance one array.
public struct OnlineLatencyEstimator: Sendable {
    public let prior: LatencyCoefficients
    /// λ: each row's weight decays by this factor per later row.
    public let forgetting: Double
    /// Correction factors `[a, b, c, d, e]` (lanes 5…7 unused).
    public private(set) var scale = SIMD8<Double>(1, 1, 1, 1, 1, 0, 0, 0)
    /// Row-major 5 × 5 covariance of the factors.
    private var covariance: [Double]
    /// Running mean absolute relative residual (before clipping).
    public private(set) var meanAbsoluteError: Double
    public private(set) var observations = 0
    /// The coefficients as learned so far.
    public private(set) var coefficients: LatencyCoefficients

    static let dimension = 5
    /// Prior variance of each factor: one standard deviation is 100 % of the prior.
    static let initialVariance = 1.0
    static let scaleRange = (1.0 / 50, 50.0)
    /// Residuals beyond this many (normal-equivalent) deviations are clipped.
    static let huberDeviations = 3.0
    /// Weight of a new residual in ``meanAbsoluteError`` (about the last 20 rows).
    static let errorRate = 0.05
    /// Relative residual assumed before any is seen.
    static let initialError = 0.2

    /// - Parameters:
    ///   - prior: where learning starts.
    ///   - memory: rows the estimator effectively remembers, 1 / (1 − λ).
    public init(prior: LatencyCoefficients = .prior, memory: Double = 200) {
        self.prior = prior
        self.forgetting = 1 - 1 / max(memory, 2)
        self.coefficients = prior
        self.meanAbsoluteError = Self.initialError
        var p = [Double](repeating: 0, count: Self.dimension * Self.dimension)
        for i in 0..<Self.dimension { p[i * Self.dimension + i] = Self.initialVariance }
        self.covariance = p
    }

    /// The relative standard deviation of the predictions (normal-equivalent, from the mean
    /// absolute residual), for turning a mean prediction into a quantile.
    public var relativeDeviation: Double { meanAbsoluteError * 1.2533 }

    public mutating func learn(_ o: LatencyObservation) {
        guard o.totalSeconds.isFinite, o.totalSeconds > 0 else { return }
        let decodeSteps = Double(max(o.outputTokens - 1, 0))
        let ttftRow = prior.ttftTerms(o.features)
        let decodeRow = prior.tpotTerms(o.features) * decodeSteps
        if let first = o.firstTokenSeconds {
            guard first.isFinite, first > 0, first <= o.totalSeconds else { return }
            update(ttftRow, first)
            if decodeSteps > 0 { update(decodeRow, o.totalSeconds - first) }
        } else {
            update(ttftRow + decodeRow, o.totalSeconds)
        }
        observations += 1
        coefficients = prior.scaled(by: scale)
    }

    /// One robust RLS step on `row` (features in prior seconds) with target `y` seconds.
    private mutating func update(_ row: SIMD8<Double>, _ y: Double) {
        let n = Self.dimension
        let norm = row.sum()
        guard norm > 0, y.isFinite, y >= 0 else { return }
        let z = row / norm
        let target = y / norm
        let residual = target - (scale * z).sum()
        let limit = Self.huberDeviations * relativeDeviation
        let clipped = min(max(residual, -limit), limit)
        meanAbsoluteError += (min(abs(residual), 4 * limit) - meanAbsoluteError) * Self.errorRate
        meanAbsoluteError = max(meanAbsoluteError, 0.005)

        var pz = SIMD8<Double>(repeating: 0)
        covariance.withUnsafeBufferPointer { p in
            for i in 0..<n {
                var s = 0.0
                for j in 0..<n { s += p[i * n + j] * z[j] }
                pz[i] = s
            }
        }
        let denominator = forgetting + (z * pz).sum()
        guard denominator > 0 else { return }
        let gain = pz / denominator
        scale += gain * clipped
        for i in 0..<n { scale[i] = min(max(scale[i], Self.scaleRange.0), Self.scaleRange.1) }
        let lambda = forgetting
        covariance.withUnsafeMutableBufferPointer { p in
            for i in 0..<n {
                for j in 0..<n { p[i * n + j] = (p[i * n + j] - gain[i] * pz[j]) / lambda }
            }
            // Forgetting inflates directions that rows barely excite (a feature that is
            // always near zero); cap each at the prior variance by scaling its row and
            // column (D·P·D keeps P positive definite and leaves the other directions alone).
            var d = SIMD8<Double>(repeating: 1)
            var capped = false
            for i in 0..<n where p[i * n + i] > Self.initialVariance {
                d[i] = (Self.initialVariance / p[i * n + i]).squareRoot()
                capped = true
            }
            if capped {
                for i in 0..<n { for j in 0..<n { p[i * n + j] *= d[i] * d[j] } }
            }
        }
    }
}
