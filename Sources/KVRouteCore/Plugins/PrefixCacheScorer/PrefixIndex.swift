/// Which endpoint probably holds which prompt blocks: per endpoint a ``BlockTable`` of block
/// hashes (bounded by `capacityPerEndpoint`, CLOCK eviction). A lookup walks the prompt's
/// chain on each candidate's table until the first block it lacks.
struct PrefixIndex: Sendable {
    let capacityPerEndpoint: Int
    /// Endpoints get small integer ids so the tables live in an array, not a dictionary.
    private var ids: [EndpointAddress: Int32] = [:]
    private var tables: [BlockTable?] = []

    init(capacityPerEndpoint: Int) {
        self.capacityPerEndpoint = capacityPerEndpoint
    }

    var size: Int { tables.reduce(0) { $0 + ($1?.count ?? 0) } }

    /// Bytes the tables' slots take (the index's memory, less the per-endpoint constants).
    var slotBytes: Int { tables.reduce(0) { $0 + ($1?.slotBytes ?? 0) } }

    private mutating func id(_ e: EndpointAddress) -> Int {
        if let i = ids[e] { return Int(i) }
        let i = tables.count
        ids[e] = Int32(i)
        tables.append(nil)
        return i
    }

    /// Leading blocks of `hashes` each candidate holds, in the candidates' order.
    func match(_ hashes: [UInt64], candidates: [EndpointSnapshot]) -> [Int] {
        var result = [Int](repeating: 0, count: candidates.count)
        guard !hashes.isEmpty, !ids.isEmpty else { return result }
        hashes.withUnsafeBufferPointer { chain in
            for (k, c) in candidates.enumerated() {
                guard let i = ids[c.address], let table = tables[Int(i)] else { continue }
                result[k] = table.leadingRun(chain)
            }
        }
        return result
    }

    /// Records that `endpoint` now holds these blocks (recently used).
    mutating func insert(_ hashes: [UInt64], endpoint: EndpointAddress) {
        guard !hashes.isEmpty else { return }
        let e = id(endpoint)
        var table = tables[e].take() ?? BlockTable(capacity: capacityPerEndpoint)
        for h in hashes { table.touch(h) }
        tables[e] = table
    }

    /// Records that `endpoint` does not hold these blocks after all.
    mutating func remove(_ hashes: ArraySlice<UInt64>, endpoint: EndpointAddress) {
        guard let e = ids[endpoint].map(Int.init), var table = tables[e].take() else { return }
        for h in hashes { table.remove(h) }
        tables[e] = table
    }

    mutating func forget(_ endpoint: EndpointAddress) {
        guard let e = ids[endpoint] else { return }
        tables[Int(e)] = nil
    }
}

/// One endpoint's block hashes: an open-addressing table (linear probing, backward-shift
/// deletion, at most 3/4 full) of 8-byte slots, grown by doubling up to the size `capacity`
/// needs. A slot holds the hash with its lowest bit used as the CLOCK reference bit (0:
/// empty). Full, the table evicts with CLOCK (second chance): a hand sweeps the slots,
/// clearing reference bits, and evicts the first member not used since the hand last
/// passed — an approximation of LRU at 8 bytes per slot (about 17 bytes per entry at the
/// default 31,250 entries), instead of a dictionary plus an order log.
struct BlockTable: Sendable {
    let capacity: Int
    private var slots: [UInt64]
    private var mask: Int
    private var shift: UInt64
    private(set) var count = 0
    private var hand = 0
    private let maxSlots: Int

    init(capacity: Int) {
        self.capacity = max(1, capacity)
        var m = 16
        while m * 3 / 4 < self.capacity { m *= 2 }
        maxSlots = m
        let initial = min(m, 64)
        slots = [UInt64](repeating: 0, count: initial)
        mask = initial - 1
        shift = UInt64(64 - initial.trailingZeroBitCount)
    }

    var slotBytes: Int { slots.count * MemoryLayout<UInt64>.stride }

    /// The stored form of a hash: its lowest bit cleared (it carries the reference bit),
    /// never 0 (an empty slot).
    @inline(__always)
    private static func key(_ h: UInt64) -> UInt64 {
        let k = h & ~1
        return k == 0 ? 2 : k
    }

    @inline(__always)
    private func home(_ k: UInt64) -> Int {
        Int(truncatingIfNeeded: (k &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    /// The slot holding `k`, or nil.
    @inline(__always)
    private func find(_ k: UInt64) -> Int? {
        slots.withUnsafeBufferPointer { s in
            var i = home(k)
            while true {
                let v = s[i]
                if v == 0 { return nil }
                if v & ~1 == k { return i }
                i = (i &+ 1) & mask
            }
        }
    }

    func contains(_ h: UInt64) -> Bool { find(Self.key(h)) != nil }

    /// How many leading hashes of `hashes` the table holds.
    func leadingRun(_ hashes: UnsafeBufferPointer<UInt64>) -> Int {
        slots.withUnsafeBufferPointer { s in
            var n = 0
            outer: for h in hashes {
                let k = Self.key(h)
                var i = home(k)
                while true {
                    let v = s[i]
                    if v == 0 { break outer }
                    if v & ~1 == k { break }
                    i = (i &+ 1) & mask
                }
                n += 1
            }
            return n
        }
    }

    /// Marks `h` used, inserting it (and evicting a member when full).
    mutating func touch(_ h: UInt64) {
        let k = Self.key(h)
        if let i = find(k) {
            slots[i] = k | 1
            return
        }
        if count >= capacity {
            evict()
        } else if (count + 1) * 4 > slots.count * 3 {
            grow()
        }
        place(k | 1)
        count += 1
    }

    /// Removes `h`; true when it was a member.
    @discardableResult
    mutating func remove(_ h: UInt64) -> Bool {
        guard let i = find(Self.key(h)) else { return false }
        delete(at: i)
        return true
    }

    private mutating func place(_ v: UInt64) {
        var i = home(v & ~1)
        while slots[i] != 0 { i = (i &+ 1) & mask }
        slots[i] = v
    }

    private mutating func grow() {
        guard slots.count < maxSlots else { return }
        let old = slots
        slots = [UInt64](repeating: 0, count: old.count * 2)
        mask = slots.count - 1
        shift -= 1
        hand = 0
        for v in old where v != 0 { place(v) }
    }

    /// CLOCK: clears reference bits under the hand until a member without one, evicted.
    private mutating func evict() {
        while true {
            let v = slots[hand]
            if v != 0 {
                if v & 1 == 0 {
                    delete(at: hand)
                    return
                }
                slots[hand] = v & ~1
            }
            hand = (hand &+ 1) & mask
        }
    }

    /// Empties slot `at` and shifts back the members of its probe run that may move.
    private mutating func delete(at start: Int) {
        var hole = start
        var j = start
        while true {
            j = (j &+ 1) & mask
            let v = slots[j]
            if v == 0 { break }
            let h = home(v & ~1)
            // v may fill the hole unless its home lies cyclically in (hole, j].
            let stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j)
            if !stays {
                slots[hole] = v
                hole = j
            }
        }
        slots[hole] = 0
        count -= 1
    }
}

extension Optional {
    /// The wrapped value, leaving nil behind (so it can change without a copy).
    fileprivate mutating func take() -> Wrapped? {
        defer { self = nil }
        return self
    }
}
