import Testing
@testable import KVRouteEngineSim

@Suite("Block pool")
struct BlockPoolTests {
    @Test("block 0 is the reserved null block: never handed out, not counted in usage")
    func nullBlock() throws {
        var pool = BlockPool(numBlocks: 5)
        #expect(pool.numFreeBlocks == 4)
        #expect(pool.usage == 0)
        let a = try pool.take(4)
        #expect(!a.contains(BlockPool.nullBlock))
        #expect(pool.usage == 1)
        pool.free(a)
        #expect(pool.usage == 0)
        #expect(!pool.freeQueueOrder.contains(BlockPool.nullBlock))
    }

    @Test("allocation takes the least recently freed cached blocks first")
    func lruOrder() throws {
        var pool = BlockPool(numBlocks: 5)
        let a = try pool.take(2)
        #expect(a == [1, 2])
        #expect(pool.numFreeBlocks == 2)
        pool.register(a[0], hash: 1)
        pool.register(a[1], hash: 2)
        pool.free(a)
        // 3 and 4 were never used and come first; then the freed pair, tail first.
        #expect(pool.freeQueueOrder == [3, 4, 2, 1])
    }

    @Test("a request's blocks are freed in reverse order, so its chain tail is evicted first")
    func reverseFree() throws {
        var pool = BlockPool(numBlocks: 4)
        let blocks = try pool.take(3)
        for (i, b) in blocks.enumerated() { pool.register(b, hash: UInt64(100 + i)) }
        pool.free(blocks)
        #expect(pool.freeQueueOrder == [3, 2, 1])
        // Reallocating one block evicts the tail (hash 102) and keeps the head of the chain.
        _ = try pool.take(1)
        #expect(pool.lookup([100, 101, 102][...]) == [1, 2])
        #expect(pool.evictions == 1)
    }

    @Test("a freed block stays hit-able until it is reallocated (lazy eviction)")
    func lazyEviction() throws {
        var pool = BlockPool(numBlocks: 3)
        let b = try pool.take(1)
        pool.register(b[0], hash: 7)
        pool.free(b)
        #expect(pool.numFreeBlocks == 2)
        #expect(pool.lookup([7][...]) == [b[0]])
        // Touching a free cached block takes it off the free queue.
        pool.touch(b)
        #expect(pool.numFreeBlocks == 1)
        #expect(pool.references(of: b[0]) == 1)
        pool.free(b)
        _ = try pool.take(2)
        #expect(pool.lookup([7][...]).isEmpty)
    }

    @Test("identical blocks computed twice are both kept (no de-duplication)")
    func noDedup() throws {
        var pool = BlockPool(numBlocks: 5)
        let a = try pool.take(1)
        let b = try pool.take(1)
        pool.register(a[0], hash: 9)
        pool.register(b[0], hash: 9)
        #expect(pool.cachedHashCount == 1)
        pool.free(a)
        pool.free(b)
        // Evicting one copy leaves the other hit-able.
        _ = try pool.take(3)
        #expect(pool.lookup([9][...]).count == 1)
    }

    @Test("allocation fails instead of overcommitting")
    func exhaustion() throws {
        var pool = BlockPool(numBlocks: 3)
        #expect(pool.allocate(3) == nil)
        _ = try pool.take(2)
        #expect(pool.allocate(1) == nil)
        #expect(pool.usage == 1)
    }

    @Test("reset forgets cached hashes")
    func reset() throws {
        var pool = BlockPool(numBlocks: 3)
        let a = try pool.take(1)
        pool.register(a[0], hash: 1)
        pool.free(a)
        let reset = pool.resetPrefixCache()
        #expect(reset)
        #expect(pool.lookup([1][...]).isEmpty)
    }
}

struct PoolExhausted: Error {}

extension BlockPool {
    mutating func take(_ n: Int) throws -> [Int32] {
        guard let b = allocate(n) else { throw PoolExhausted() }
        return b
    }
}
