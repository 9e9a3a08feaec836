/// The KV block pool with vLLM's prefix-caching semantics (vLLM v1 `BlockPool`):
/// - block 0 is the null block, reserved as a placeholder and never handed out, so usage is
///   measured over the other `numBlocks − 1`;
/// - blocks with no users sit on a free queue; allocation takes the head;
/// - a free block keeps its hash and can still be hit until it is reallocated (lazy eviction);
/// - a request's blocks are freed in reverse order, so a chain's tail is evicted first;
///   freed blocks that hold a hash go to the tail (least recently used evicted first), freed
///   blocks that were never hashed go to the head (vLLM 0.32; older releases appended them
///   too, see ``freeUnhashedFirst``), so cached blocks live longer;
/// - the same hash may live in several blocks (no de-duplication).
public struct BlockPool: Sendable {
    public let numBlocks: Int
    /// Whether freed blocks that were never hashed go to the head of the free queue.
    public let freeUnhashedFirst: Bool
    private var refCount: [Int32]
    private var blockHash: [UInt64?]
    // Intrusive doubly-linked free queue; -1 is "none".
    private var prev: [Int32]
    private var next: [Int32]
    private var inFreeQueue: [Bool]
    private var head: Int32 = -1
    private var tail: Int32 = -1
    public private(set) var numFreeBlocks: Int
    /// hash → physical blocks holding it (several when identical blocks were computed twice).
    private var cached: [UInt64: [Int32]] = [:]
    /// Blocks evicted (a cached hash dropped on reallocation) since start.
    public private(set) var evictions: Int = 0

    /// The reserved placeholder block.
    public static let nullBlock: Int32 = 0

    public init(numBlocks: Int, freeUnhashedFirst: Bool = true) {
        self.numBlocks = numBlocks
        self.freeUnhashedFirst = freeUnhashedFirst
        refCount = Array(repeating: 0, count: numBlocks)
        blockHash = Array(repeating: nil, count: numBlocks)
        prev = (0..<numBlocks).map { Int32($0) - 1 }
        next = (0..<numBlocks).map { $0 + 1 < numBlocks ? Int32($0 + 1) : -1 }
        inFreeQueue = Array(repeating: true, count: numBlocks)
        head = numBlocks > 0 ? 0 : -1
        tail = Int32(numBlocks - 1)
        numFreeBlocks = numBlocks
        // vLLM pops the null block off the free queue at start and never frees it.
        if numBlocks > 0 { unlink(Self.nullBlock) }
    }

    /// Blocks requests can ever hold: all but the null block.
    public var usableBlocks: Int { max(0, numBlocks - 1) }
    /// Blocks held by requests (the null block not counted).
    public var usedBlocks: Int { usableBlocks - numFreeBlocks }

    /// Fraction of usable blocks held by running requests, vLLM's `used / (N − 1)`
    /// (free-but-cached blocks count as free).
    public var usage: Double { usableBlocks == 0 ? 0 : 1 - Double(numFreeBlocks) / Double(usableBlocks) }
    /// Number of distinct cached hashes.
    public var cachedHashCount: Int { cached.count }
    /// Every hash a lookup can hit now: blocks in use and free blocks not yet reused.
    public var cachedHashes: Set<UInt64> { Set(cached.keys) }
    /// Physical blocks holding a cached hash (more than ``cachedHashCount`` when identical
    /// blocks were computed twice).
    public var cachedBlockCount: Int { cached.values.reduce(0) { $0 + $1.count } }

    /// Physical blocks for the longest run of leading hashes present in the cache.
    public func lookup(_ hashes: ArraySlice<UInt64>) -> [Int32] {
        var out: [Int32] = []
        for h in hashes {
            guard let ids = cached[h], let first = ids.first else { break }
            out.append(first)
        }
        return out
    }

    /// How many of `blocks` sit on the free queue (touching them takes them off it).
    public func countFree(_ blocks: [Int32]) -> Int {
        var n = 0
        for b in blocks where refCount[Int(b)] == 0 && inFreeQueue[Int(b)] { n += 1 }
        return n
    }

    /// Takes a reference on cache-hit blocks, pulling free ones off the free queue.
    public mutating func touch(_ blocks: [Int32]) {
        for b in blocks {
            if refCount[Int(b)] == 0 && inFreeQueue[Int(b)] { unlink(b) }
            refCount[Int(b)] += 1
        }
    }

    /// Pops `n` blocks from the head of the free queue, evicting any hash they held.
    public mutating func allocate(_ n: Int) -> [Int32]? {
        allocate(n) { _, _ in }
    }

    /// Pops `n` blocks from the head of the free queue; `onEvict` hears of each block whose
    /// cached hash this drops (vLLM's lazy eviction), in order.
    public mutating func allocate(_ n: Int, onEvict: (_ block: Int32, _ hash: UInt64) -> Void) -> [Int32]? {
        guard n <= numFreeBlocks else { return nil }
        var out: [Int32] = []
        out.reserveCapacity(n)
        for _ in 0..<n {
            let b = head
            unlink(b)
            if let h = blockHash[Int(b)] {
                removeCached(h, block: b)
                blockHash[Int(b)] = nil
                evictions += 1
                onEvict(b, h)
            }
            refCount[Int(b)] = 1
            out.append(b)
        }
        return out
    }

    /// Drops one reference on each block, last block first. Blocks reaching zero that hold a
    /// hash go to the tail of the free queue; blocks never hashed go to the head (in the
    /// order freed) when ``freeUnhashedFirst`` is set, else to the tail too.
    public mutating func free(_ blocks: [Int32]) {
        var first: [Int32] = []
        for b in blocks.reversed() {
            refCount[Int(b)] -= 1
            precondition(refCount[Int(b)] >= 0, "block \(b) freed more often than used")
            guard refCount[Int(b)] == 0 else { continue }
            if freeUnhashedFirst && blockHash[Int(b)] == nil { first.append(b) } else { append(b) }
        }
        for b in first.reversed() { prepend(b) }
    }

    /// Registers a block under its hash so later requests can hit it.
    public mutating func register(_ block: Int32, hash: UInt64) {
        guard blockHash[Int(block)] == nil else { return }
        blockHash[Int(block)] = hash
        cached[hash, default: []].append(block)
    }

    /// Forgets every cached hash (vLLM's `reset_prefix_cache`), only when no request holds a
    /// block, as vLLM: returns false and changes nothing otherwise.
    public mutating func resetPrefixCache() -> Bool {
        guard usedBlocks == 0 else { return false }
        cached.removeAll(keepingCapacity: true)
        for i in 0..<numBlocks { blockHash[i] = nil }
        return true
    }

    public func hash(of block: Int32) -> UInt64? { blockHash[Int(block)] }
    public func references(of block: Int32) -> Int { Int(refCount[Int(block)]) }
    /// Free-queue order, head (next to be evicted) first. For tests and debugging.
    public var freeQueueOrder: [Int32] {
        var out: [Int32] = []
        var b = head
        while b >= 0 { out.append(b); b = next[Int(b)] }
        return out
    }

    private mutating func removeCached(_ h: UInt64, block: Int32) {
        guard var ids = cached[h] else { return }
        ids.removeAll { $0 == block }
        cached[h] = ids.isEmpty ? nil : ids
    }

    private mutating func unlink(_ b: Int32) {
        let p = prev[Int(b)], n = next[Int(b)]
        if p >= 0 { next[Int(p)] = n } else { head = n }
        if n >= 0 { prev[Int(n)] = p } else { tail = p }
        prev[Int(b)] = -1
        next[Int(b)] = -1
        inFreeQueue[Int(b)] = false
        numFreeBlocks -= 1
    }

    private mutating func append(_ b: Int32) {
        prev[Int(b)] = tail
        next[Int(b)] = -1
        if tail >= 0 { next[Int(tail)] = b } else { head = b }
        tail = b
        inFreeQueue[Int(b)] = true
        numFreeBlocks += 1
    }

    private mutating func prepend(_ b: Int32) {
        next[Int(b)] = head
        prev[Int(b)] = -1
        if head >= 0 { prev[Int(head)] = b } else { tail = b }
        head = b
        inFreeQueue[Int(b)] = true
        numFreeBlocks += 1
    }
}
