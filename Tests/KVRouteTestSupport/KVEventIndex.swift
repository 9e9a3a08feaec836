import KVRouteKVEvents

/// What a KV event subscriber knows of one engine's cache: each block hash (its low 64
/// bits) with the number of physical blocks stored under it — two blocks may hold the same
/// hash, so a removal only forgets a hash when its last block goes.
public struct KVEventIndex: Sendable {
    public private(set) var counts: [UInt64: Int] = [:]
    /// Removals of hashes the index never held: events that do not add up.
    public private(set) var problems: [String] = []
    public private(set) var stored = 0, removed = 0, cleared = 0

    public init() {}

    public var hashes: Set<UInt64> { Set(counts.keys) }

    public mutating func apply(_ batch: KVEventBatch) {
        for event in batch.events {
            switch event {
            case .blockStored(let e):
                for h in e.blockHashes { counts[h.low64, default: 0] += 1 }
                stored += e.blockHashes.count
            case .blockRemoved(let e):
                for h in e.blockHashes {
                    guard let n = counts[h.low64] else {
                        problems.append("removed \(h.low64), which was never stored")
                        continue
                    }
                    counts[h.low64] = n > 1 ? n - 1 : nil
                }
                removed += e.blockHashes.count
            case .allBlocksCleared:
                counts.removeAll()
                cleared += 1
            }
        }
    }

    /// Forgets everything (the engine restarted: its seq went back).
    public mutating func reset() { counts.removeAll() }
}
