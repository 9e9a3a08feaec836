import KVRouteKVEvents

/// Which engines hold which KV blocks, built from the engines' own KV events (vLLM's
/// `BlockStored`, `BlockRemoved`, `AllBlocksCleared`): the view a precise prefix-cache scorer
/// reads. A pure value: no I/O, no clock; ``PreciseIndexService`` feeds it.
///
/// - An entry is one (engine, block hash) with the number of physical copies the engine
///   reported: vLLM may store the same hash twice (two requests computing the same block, or
///   a fully cached prompt's recomputed last block) and removes each copy on its own, so the
///   hash leaves the engine's set only with its last copy.
/// - Each entry carries its scope, the served model and LoRA adapter; a lookup names the
///   scope, and blocks of another model or adapter never match (vLLM's hashes already differ
///   by adapter; the model is the engine's).
/// - The index is bounded by a memory budget: when full, the least recently stored entry goes
///   (an engine that still holds that block is under-reported, never over-reported), and a
///   later removal of an evicted hash is ignored.
///
/// Storage: entries live in one array; a hash table maps each hash to its first entry, and
/// the entries of one hash (one per engine) chain from it, so a lookup costs one probe per
/// block whatever the number of engines. A doubly linked list through the entries orders
/// them by last store.
public struct PreciseBlockIndex: Sendable {
    public struct Configuration: Sendable, Hashable {
        /// Bytes the index may use; entries beyond ``capacity`` are evicted.
        public var memoryBudgetBytes: Int

        public init(memoryBudgetBytes: Int = 256 << 20) {
            self.memoryBudgetBytes = memoryBudgetBytes
        }

        /// Most entries the budget holds, at ``PreciseBlockIndex/bytesPerEntry`` each.
        public var capacity: Int { max(1, memoryBudgetBytes / PreciseBlockIndex.bytesPerEntry) }
    }

    /// What one entry costs, for the budget: the entry itself (32 bytes) plus its share of the
    /// hash table (a bucket is 8 + 4 bytes; Swift's tables are 37.5 % to 75 % full) and of
    /// the free list. The test "index size" prints the measured figure (58-59 bytes).
    public static let bytesPerEntry = MemoryLayout<Entry>.stride + 28

    /// Counts since the index was made.
    public struct Statistics: Sendable, Hashable {
        public var stored = 0
        public var removed = 0
        /// Entries dropped for the memory budget.
        public var evicted = 0
        /// Removals of a hash the engine did not hold here (evicted, or missed events).
        public var unknownRemovals = 0
        /// `AllBlocksCleared` events and engines dropped (restart, unrecoverable gap).
        public var cleared = 0
    }

    struct Entry {
        var hash: UInt64
        var scope: UInt32
        var copies: UInt32
        var prev: Int32
        var next: Int32
        /// The next entry with the same hash (another engine), or −1.
        var sameHash: Int32
        var engine: UInt16
    }

    public let configuration: Configuration
    public private(set) var statistics = Statistics()
    private var entries: [Entry] = []
    private var table: [UInt64: Int32] = [:]
    private var freeSlots: [Int32] = []
    private var oldest: Int32 = -1
    private var newest: Int32 = -1
    private var engineNames: [String] = []
    private var engineIDs: [String: UInt16] = [:]
    private var engineCounts: [Int] = []
    private var scopeIDs: [Scope: UInt32] = [:]

    public init(_ configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Entries held: (engine, hash) pairs.
    public var count: Int { entries.count - freeSlots.count }

    /// Bytes the entries and the hash table take now (their capacities).
    public var allocatedBytes: Int {
        entries.capacity * MemoryLayout<Entry>.stride + table.capacity * 12 * 4 / 3
            + freeSlots.capacity * 4
    }

    /// Blocks held for `engine`.
    public func count(engine: String) -> Int {
        engineIDs[engine].map { engineCounts[Int($0)] } ?? 0
    }

    /// The engines the index has heard of.
    public var engines: [String] { engineNames }

    // MARK: - Events

    /// Applies one batch of `engine`'s events. Blocks of a medium other than the GPU (CPU
    /// offload tiers) are left out: a scorer ranks what an engine can attend to now.
    public mutating func apply(_ batch: KVEventBatch, engine: String, model: String) {
        let e = engineID(engine)
        for event in batch.events {
            switch event {
            case .blockStored(let s):
                guard Self.isGPU(s.medium) else { continue }
                let scope = scopeID(Scope(model: model, lora: s.loraName ?? s.loraID.map { "#\($0)" }))
                for h in s.blockHashes { store(h.low64, engine: e, scope: scope) }
            case .blockRemoved(let r):
                guard Self.isGPU(r.medium) else { continue }
                for h in r.blockHashes { remove(h.low64, engine: e) }
            case .allBlocksCleared:
                dropAll(engine: e)
            }
        }
    }

    /// Forgets every block of `engine` (it restarted, or its events cannot be trusted).
    public mutating func drop(engine: String) {
        guard let e = engineIDs[engine] else { return }
        dropAll(engine: e)
    }

    static func isGPU(_ medium: String?) -> Bool {
        medium == nil || medium == "GPU" || medium == "gpu"
    }

    // MARK: - Lookups

    /// For each engine, how many of `hashes` (a prompt's block hashes in order) it holds as
    /// an unbroken run from the first, under the scope (`model`, `lora`). Engines with no
    /// leading block are absent.
    public func matchedBlocks(_ hashes: some Sequence<UInt64>, model: String, lora: String? = nil) -> [String: Int] {
        guard let scope = scopeIDs[Scope(model: model, lora: lora)] else { return [:] }
        var runs = [Int](repeating: 0, count: engineNames.count)
        var position = 0
        for h in hashes {
            var extended = false
            var slot = table[h] ?? -1
            while slot >= 0 {
                let entry = entries[Int(slot)]
                if entry.scope == scope, runs[Int(entry.engine)] == position {
                    runs[Int(entry.engine)] = position + 1
                    extended = true
                }
                slot = entry.sameHash
            }
            guard extended else { break }
            position += 1
        }
        var out: [String: Int] = [:]
        for (i, n) in runs.enumerated() where n > 0 { out[engineNames[i]] = n }
        return out
    }

    /// The block hashes held for `engine`, in any scope.
    public func hashes(engine: String) -> Set<UInt64> {
        guard let e = engineIDs[engine] else { return [] }
        var out = Set<UInt64>()
        var slot = oldest
        while slot >= 0 {
            let entry = entries[Int(slot)]
            if entry.engine == e { out.insert(entry.hash) }
            slot = entry.next
        }
        return out
    }

    /// Copies `engine` reported of `hash` (0 when absent).
    public func copies(of hash: UInt64, engine: String) -> Int {
        guard let e = engineIDs[engine], let slot = find(hash, engine: e) else { return 0 }
        return Int(entries[Int(slot)].copies)
    }

    // MARK: - Storage

    struct Scope: Hashable {
        var model: String
        var lora: String?
    }

    private mutating func engineID(_ name: String) -> UInt16 {
        if let id = engineIDs[name] { return id }
        precondition(engineNames.count < Int(UInt16.max), "more engines than the index can name")
        let id = UInt16(engineNames.count)
        engineNames.append(name)
        engineIDs[name] = id
        engineCounts.append(0)
        return id
    }

    private mutating func scopeID(_ scope: Scope) -> UInt32 {
        if let id = scopeIDs[scope] { return id }
        let id = UInt32(scopeIDs.count)
        scopeIDs[scope] = id
        return id
    }

    private func find(_ hash: UInt64, engine: UInt16) -> Int32? {
        var slot = table[hash] ?? -1
        while slot >= 0 {
            if entries[Int(slot)].engine == engine { return slot }
            slot = entries[Int(slot)].sameHash
        }
        return nil
    }

    private mutating func store(_ hash: UInt64, engine: UInt16, scope: UInt32) {
        statistics.stored += 1
        if let slot = find(hash, engine: engine) {
            entries[Int(slot)].copies &+= 1
            entries[Int(slot)].scope = scope
            unlinkAge(slot)
            linkNewest(slot)
            return
        }
        if count >= configuration.capacity, oldest >= 0 {
            statistics.evicted += 1
            release(oldest)
        }
        let entry = Entry(hash: hash, scope: scope, copies: 1, prev: -1, next: -1, sameHash: table[hash] ?? -1, engine: engine)
        let slot: Int32
        if let free = freeSlots.popLast() {
            slot = free
            entries[Int(slot)] = entry
        } else {
            slot = Int32(entries.count)
            entries.append(entry)
        }
        table[hash] = slot
        linkNewest(slot)
        engineCounts[Int(engine)] += 1
    }

    private mutating func remove(_ hash: UInt64, engine: UInt16) {
        guard let slot = find(hash, engine: engine) else {
            statistics.unknownRemovals += 1
            return
        }
        statistics.removed += 1
        if entries[Int(slot)].copies > 1 {
            entries[Int(slot)].copies -= 1
        } else {
            release(slot)
        }
    }

    private mutating func dropAll(engine: UInt16) {
        statistics.cleared += 1
        guard engineCounts[Int(engine)] > 0 else { return }
        var slot = oldest
        while slot >= 0 {
            let next = entries[Int(slot)].next
            if entries[Int(slot)].engine == engine { release(slot) }
            slot = next
        }
    }

    /// Takes an entry out of its hash chain and the age list, and frees its slot.
    private mutating func release(_ slot: Int32) {
        let entry = entries[Int(slot)]
        if table[entry.hash] == slot {
            if entry.sameHash >= 0 { table[entry.hash] = entry.sameHash } else { table[entry.hash] = nil }
        } else {
            var prior = table[entry.hash] ?? -1
            while prior >= 0, entries[Int(prior)].sameHash != slot { prior = entries[Int(prior)].sameHash }
            if prior >= 0 { entries[Int(prior)].sameHash = entry.sameHash }
        }
        unlinkAge(slot)
        engineCounts[Int(entry.engine)] -= 1
        entries[Int(slot)].copies = 0
        entries[Int(slot)].sameHash = -1
        freeSlots.append(slot)
    }

    private mutating func unlinkAge(_ slot: Int32) {
        let e = entries[Int(slot)]
        if e.prev >= 0 { entries[Int(e.prev)].next = e.next } else { oldest = e.next }
        if e.next >= 0 { entries[Int(e.next)].prev = e.prev } else { newest = e.prev }
        entries[Int(slot)].prev = -1
        entries[Int(slot)].next = -1
    }

    private mutating func linkNewest(_ slot: Int32) {
        entries[Int(slot)].prev = newest
        entries[Int(slot)].next = -1
        if newest >= 0 { entries[Int(newest)].next = slot } else { oldest = slot }
        newest = slot
    }
}
