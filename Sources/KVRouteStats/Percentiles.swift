import Histogram

/// Nearest-rank percentiles of non-negative measurements (latencies) over an HdrHistogram:
/// memory bounded whatever the number of samples, no sorting. Values are kept to 1/1000 of
/// their unit with four significant digits: exact below 32.768 units (a TTFT of 20 ms, a
/// decision of 30 µs), within one part in 10,000 above. The one percentile implementation
/// of the bench, the validator and the gateway's dashboard.
public struct Percentiles: Sendable {
    /// Units kept per value unit.
    static let scale = 1000.0
    /// The largest value kept (larger ones count as this), in kept units.
    static let ceiling = UInt64(1) << 50

    private var histogram = Histogram<UInt32>(numberOfSignificantValueDigits: .four)

    public init() {}

    public init(_ values: some Sequence<Double>) {
        for v in values { record(v) }
    }

    /// Records one value (negative or NaN counts as 0).
    public mutating func record(_ value: Double) {
        let kept = (value * Self.scale).rounded()
        _ = histogram.record(kept.isNaN || kept <= 0 ? 0 : kept >= Double(Self.ceiling) ? Self.ceiling : UInt64(kept))
    }

    public var count: Int { Int(histogram.totalCount) }
    public var isEmpty: Bool { histogram.totalCount == 0 }

    /// The nearest-rank value at `p` (0…1): the smallest value at least a fraction `p` of the
    /// values are at or below; nil when nothing was recorded.
    public func value(at p: Double) -> Double? {
        guard !isEmpty else { return nil }
        return Double(histogram.valueAtPercentile(min(max(p, 0), 1) * 100)) / Self.scale
    }
}
