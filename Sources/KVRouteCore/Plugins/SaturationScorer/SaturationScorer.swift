/// `saturation-scorer` (kvroute): how far an endpoint is from saturation, 1 − min(1, s), where
/// s is the larger of (requests the router has in flight there + its waiting queue) /
/// `threshold` (counted above the least-loaded candidate when `relative` is true) and
/// (KV-cache usage − `kvThreshold`) / 0.4 — an engine whose cache is filling up is about to
/// evict and preempt, whatever its request count. Unlike the relative load scorers, it lets a strong prefix match win while
/// its endpoint has headroom and gives the request away once that endpoint approaches
/// saturation — so a hot prefix spreads instead of queueing, and a cold one is never held
/// back by it. `threshold` defaults to 64 (or the endpoint's max-num-seqs / 4 when known).
public struct SaturationScorer: EndpointScorer {
    public let type = "saturation-scorer"
    public let name: String
    public let threshold: Int?
    public let relative: Bool
    /// KV-cache usage at which the endpoint starts to count as saturating; it is fully
    /// saturated at `kvThreshold` + 0.4 (nil: KV usage is ignored).
    public let kvThreshold: Double?

    public init(name: String, threshold: Int? = nil, relative: Bool = false, kvThreshold: Double? = 0.5) {
        self.name = name
        self.threshold = threshold
        self.relative = relative
        self.kvThreshold = kvThreshold
    }

    /// `threshold` 0 (the default) derives it from the endpoint; `kvThreshold` ≥ 1 ignores KV usage.
    static func make(name: String, parameters p: inout PluginParameters) throws -> SaturationScorer {
        let t = try p.int("threshold", default: 0, min: 0)
        p.ignore("relative")
        let relative: Bool = if case .bool(let b)? = p.values["relative"] { b } else { false }
        let kv = try p.double("kvThreshold", default: 0.5)
        return SaturationScorer(name: name, threshold: t == 0 ? nil : t, relative: relative, kvThreshold: kv >= 1 ? nil : kv)
    }

    public func score(_ candidates: [EndpointSnapshot], context: inout SchedulingContext, ledger: RoutingLedger) -> [Double] {
        let loads = candidates.map { Double((ledger.inFlight($0.address)) + $0.waitingRequests) }
        let floor = relative ? (loads.min() ?? 0) : 0
        return candidates.indices.map { i in
            let limit = Double(threshold ?? candidates[i].maxNumSeqs.map { max(8, $0 / 4) } ?? 64)
            var saturation = (loads[i] - floor) / limit
            if let kv = kvThreshold { saturation = max(saturation, (candidates[i].kvCacheUsage - kv) / 0.4) }
            return 1 - min(1, max(0, saturation))
        }
    }
}
