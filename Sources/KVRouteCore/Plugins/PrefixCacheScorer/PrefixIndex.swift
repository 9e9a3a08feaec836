/// Which endpoint probably holds which prompt blocks: per endpoint an LRU set of block
/// hashes (bounded by `capacityPerEndpoint`), plus a global map from hash to the endpoints
/// holding it, so a lookup walks the prompt's chain once for all candidates.
struct PrefixIndex: Sendable {
    let capacityPerEndpoint: Int
    /// Endpoints get small integer ids so the hot loops compare integers, not addresses.
    private var ids: [EndpointAddress: Int32] = [:]
    private var holders: [UInt64: [Int32]] = [:]
    private var lru: [Int32: LRUSet] = [:]

    init(capacityPerEndpoint: Int) {
        self.capacityPerEndpoint = capacityPerEndpoint
    }

    var size: Int { lru.values.reduce(0) { $0 + $1.count } }

    private mutating func id(_ e: EndpointAddress) -> Int32 {
        if let i = ids[e] { return i }
        let i = Int32(ids.count)
        ids[e] = i
        return i
    }

    /// Leading blocks of `hashes` each candidate holds.
    func match(_ hashes: [UInt64], candidates: [EndpointAddress]) -> [EndpointAddress: Int] {
        let candidateIDs = candidates.map { ids[$0] ?? -1 }
        var alive = candidateIDs.filter { $0 >= 0 }
        var depth = [Int32: Int]()
        var i = 0
        while !alive.isEmpty && i < hashes.count {
            guard let owners = holders[hashes[i]] else { break }
            alive.removeAll { !owners.contains($0) }
            for a in alive { depth[a] = i + 1 }
            i += 1
        }
        var result: [EndpointAddress: Int] = [:]
        for (k, c) in candidates.enumerated() where candidateIDs[k] >= 0 {
            if let d = depth[candidateIDs[k]] { result[c] = d }
        }
        return result
    }

    /// Records that `endpoint` now holds these blocks (most recently used).
    mutating func insert(_ hashes: [UInt64], endpoint: EndpointAddress) {
        let e = id(endpoint)
        var set = lru.removeValue(forKey: e) ?? LRUSet(capacity: capacityPerEndpoint)
        for h in hashes {
            if set.touch(h) {
                holders[h, default: []].append(e)
            }
            while set.count > capacityPerEndpoint, let evicted = set.evictOldest() {
                drop(evicted, from: e)
            }
        }
        lru[e] = set
    }

    /// Records that `endpoint` does not hold these blocks after all.
    mutating func remove(_ hashes: ArraySlice<UInt64>, endpoint: EndpointAddress) {
        guard let e = ids[endpoint], var set = lru.removeValue(forKey: e) else { return }
        for h in hashes where set.remove(h) { drop(h, from: e) }
        lru[e] = set
    }

    mutating func forget(_ endpoint: EndpointAddress) {
        guard let e = ids[endpoint], let set = lru.removeValue(forKey: e) else { return }
        for h in set.members { drop(h, from: e) }
    }

    private mutating func drop(_ h: UInt64, from e: Int32) {
        guard var owners = holders[h] else { return }
        owners.removeAll { $0 == e }
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

    /// Removes `h`; true when it was a member (its order-log entry goes stale).
    mutating func remove(_ h: UInt64) -> Bool {
        stamps.removeValue(forKey: h) != nil
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
