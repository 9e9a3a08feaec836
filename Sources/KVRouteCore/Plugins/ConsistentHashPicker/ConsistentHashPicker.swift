import Synchronization

/// `consistent-hash-picker`: the mesh's session affinity — Istio's `consistentHash` on the
/// session id over a ring of `minimumRingSize` points (``ConsistentHashRing``). A request with
/// a session goes to the session's point on the ring, its fallbacks the next endpoints
/// round it; one without a session goes to a random endpoint. Scores are ignored.
///
/// The ring depends only on the candidates, so the picker keeps the last one it built (a
/// cache of a pure function, not routing state).
public final class ConsistentHashPicker: EndpointPicker {
    public let type = "consistent-hash-picker"
    public let name: String
    public let minimumRingSize: Int
    private let cache = Mutex<ConsistentHashRing?>(nil)

    public static let defaultRingSize = 4096

    public init(name: String, minimumRingSize: Int = defaultRingSize) {
        self.name = name
        self.minimumRingSize = minimumRingSize
    }

    static func make(name: String, parameters p: inout PluginParameters) throws -> ConsistentHashPicker {
        ConsistentHashPicker(name: name, minimumRingSize: try p.int("minimumRingSize", default: defaultRingSize, min: 1, max: 1 << 23))
    }

    public func pick(_ scored: [(endpoint: EndpointSnapshot, score: Double)], context: inout SchedulingContext, ledger: RoutingLedger,
                     using rng: inout SeededGenerator) -> [EndpointAddress] {
        let pool = scored.map(\.endpoint.address)
        guard let key = context.request.sessionKey else { return pool.shuffled(using: &rng) }
        return ring(pool).pick(key: key, count: pool.count)
    }

    func ring(_ pool: [EndpointAddress]) -> ConsistentHashRing {
        let members = Array(Set(pool)).sorted()
        return cache.withLock { cached in
            if let r = cached, r.endpoints == members { return r }
            let r = ConsistentHashRing(endpoints: members, minimumRingSize: minimumRingSize)
            cached = r
            return r
        }
    }
}
