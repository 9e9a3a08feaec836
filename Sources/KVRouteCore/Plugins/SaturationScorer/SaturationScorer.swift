/// `saturation-scorer` (kvroute): how far an endpoint is from saturation, on an absolute
/// scale: 1 − min(1, (requests the router has in flight there + its waiting queue) /
/// `threshold`). Unlike the relative load scorers, it lets a strong prefix match win while
/// its endpoint has headroom and gives the request away once that endpoint approaches
/// saturation — so a hot prefix spreads instead of queueing, and a cold one is never held
/// back by it. `threshold` defaults to 64 (or the endpoint's max-num-seqs / 4 when known).
public struct SaturationScorer: EndpointScorer {
    public let type = "saturation-scorer"
    public let name: String
    public let threshold: Int?

    public init(name: String, threshold: Int? = nil) {
        self.name = name
        self.threshold = threshold
    }

    public func score(_ candidates: [EndpointSnapshot], context: inout SchedulingContext) -> [Double] {
        candidates.map { c in
            let limit = Double(threshold ?? c.maxNumSeqs.map { max(8, $0 / 4) } ?? 64)
            let load = Double((context.inFlight[c.address] ?? 0) + c.waitingRequests)
            return 1 - min(1, load / limit)
        }
    }
}
