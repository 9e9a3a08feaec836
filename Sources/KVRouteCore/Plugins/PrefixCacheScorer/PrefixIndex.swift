/// Which endpoint probably holds which prompt blocks: per endpoint an LRU set of block
/// hashes (bounded by `capacityPerEndpoint`), plus a global map from hash to the endpoints
/// holding it, so a lookup walks the prompt's chain once for all candidates.
struct PrefixIndex: Sendable {
    let capacityPerEndpoint: Int
    private var holders: [UInt64: [EndpointAddress]] = [:]
    private var lru: [EndpointAddress: LRUSet] = [:]
    private(set) var lookedUp = 0
    private(set) var matched = 0

    init(capacityPerEndpoint: Int) {
        self.capacityPerEndpoint = capacityPerEndpoint
    }

    var size: Int { lru.values.reduce(0) { $0 + $1.count } }
    var hitRatio: Double { lookedUp == 0 ? 0 : Double(matched) / Double(lookedUp) }

    /// Leading blocks of `hashes` each candidate holds.
    mutating func match(_ hashes: [UInt64], candidates: [EndpointAddress]) -> [EndpointAddress: Int] {
        var result: [EndpointAddress: Int] = [:]
        var alive = Set(candidates)
        for (i, h) in hashes.enumerated() {
            guard let owners = holders[h] else { break }
            var next = Set<EndpointAddress>()
            for o in owners where alive.contains(o) {
                next.insert(o)
                result[o] = i + 1
            }
            alive = next
            if alive.isEmpty { break }
        }
        lookedUp += hashes.count
        matched += result.values.max() ?? 0
        return result
    }

    /// Records that `endpoint` now holds these blocks (most recently used).
    mutating func insert(_ hashes: [UInt64], endpoint: EndpointAddress) {
        var set = lru[endpoint] ?? LRUSet(capacity: capacityPerEndpoint)
        for h in hashes {
            if set.touch(h) {
                holders[h, default: []].append(endpoint)
            }
            while set.count > capacityPerEndpoint, let evicted = set.evictOldest() {
                drop(evicted, from: endpoint)
            }
        }
        lru[endpoint] = set
    }

    mutating func forget(_ endpoint: EndpointAddress) {
        guard let set = lru.removeValue(forKey: endpoint) else { return }
        for h in set.members { drop(h, from: endpoint) }
    }

    private mutating func drop(_ h: UInt64, from endpoint: EndpointAddress) {
        guard var owners = holders[h] else { return }
        owners.removeAll { $0 == endpoint }
        holders[h] = owners.isEmpty ? nil : owners
    }
}

/// An LRU set of hashes: a stamp per member and an append-only order log compacted when it
/// grows past twice the live size.
struct LRUSet: Sendable {
    let capacity: Int
    private var stamps: [UInt64: UInt64] = [:]
    private var log: [(hash: UInt64, stamp: UInt64)] = []
    private var head = 0
    private var clock: UInt64 = 0

    init(capacity: Int) { self.capacity = capacity }

    var count: Int { stamps.count }
    var members: Dictionary<UInt64, UInt64>.Keys { stamps.keys }

    /// Marks `h` most recently used; true when it was not a member before.
    mutating func touch(_ h: UInt64) -> Bool {
        clock += 1
        let isNew = stamps.updateValue(clock, forKey: h) == nil
        log.append((h, clock))
        if log.count - head > 2 * max(stamps.count, 64) { compact() }
        return isNew
    }

    mutating func evictOldest() -> UInt64? {
        while head < log.count {
            let (h, s) = log[head]
            head += 1
            if stamps[h] == s {
                stamps[h] = nil
                return h
            }
        }
        return nil
    }

    private mutating func compact() {
        log = log[head...].filter { stamps[$0.hash] == $0.stamp }
        head = 0
    }
}
