/// A ring-hash load balancer like Envoy's RING_HASH (Istio `consistentHash` with
/// `minimumRingSize`): every endpoint owns points on a ring; a key goes to the first point
/// at or after its hash. Unlike Envoy, an endpoint's point count does not depend on the
/// pool size (minimumRingSize / 16, at least 64), so removing an endpoint moves only the
/// keys it held and adding one takes keys only for itself.
public struct ConsistentHashRing: Sendable {
    private let points: [(hash: UInt64, endpoint: Int)]
    public let endpoints: [EndpointAddress]

    public init(endpoints: [EndpointAddress], minimumRingSize: Int = 4096) {
        let unique = Array(Set(endpoints)).sorted()
        self.endpoints = unique
        guard !unique.isEmpty else {
            points = []
            return
        }
        let perEndpoint = max(64, minimumRingSize / 16)
        var pts: [(UInt64, Int)] = []
        pts.reserveCapacity(perEndpoint * unique.count)
        for (i, e) in unique.enumerated() {
            let base = e.description
            for r in 0..<perEndpoint {
                pts.append((StableHash.hash("\(base)_\(r)"), i))
            }
        }
        points = pts.sorted { $0.0 < $1.0 }.map { (hash: $0.0, endpoint: $0.1) }
    }

    public func pick(key: String) -> EndpointAddress? { pick(key: key, count: 1).first }

    /// Up to `count` distinct endpoints walking the ring from the key's point: the first is
    /// the key's home, the others are its fallbacks.
    public func pick(key: String, count: Int) -> [EndpointAddress] {
        guard !points.isEmpty, count > 0 else { return [] }
        let h = StableHash.hash(key)
        var lo = 0, hi = points.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if points[mid].hash < h { lo = mid + 1 } else { hi = mid }
        }
        var out: [EndpointAddress] = []
        var seen = Set<Int>()
        var i = lo % points.count
        var steps = 0
        while out.count < min(count, endpoints.count) && steps < points.count {
            let e = points[i].endpoint
            if seen.insert(e).inserted { out.append(endpoints[e]) }
            i = (i + 1) % points.count
            steps += 1
        }
        return out
    }
}
