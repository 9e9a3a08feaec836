import Testing
@testable import KVRouteCore

/// The prefix index's parts: the word-at-a-time block hash, the chunker that cuts a streamed
/// prompt into blocks, the per-endpoint CLOCK table and the index's leading-run match.
@Suite struct PrefixIndexTests {
    static func chain(_ text: String, blockBytes: Int = 64, maxBlocks: Int = 256, pieces: [Int] = []) -> [UInt64] {
        var chunker = BlockChunker(blockBytes: blockBytes, maxBlocks: maxBlocks, seed: 7)
        let bytes = Array(text.utf8)
        var at = 0
        for n in pieces + [bytes.count] where at < bytes.count {
            let end = min(bytes.count, at + n)
            bytes[at..<end].withUnsafeBytes { _ = chunker.feed($0) }
            at = end
        }
        return chunker.hashes
    }

    @Test("block hashes are fixed values (equal across processes and machines)")
    func blockHashIsStable() {
        let text = Array("The quick brown fox jumps over the lazy dog, twice over: the quick brown fox.".utf8)
        let h = text.withUnsafeBytes { StableHash.block($0, seed: StableHash.seed) }
        let short = text[0..<13].withUnsafeBytes { StableHash.block($0, seed: 1) }
        #expect(h == 0x9009_B8A4_C40F_308E)
        #expect(short == 0xC9F8_A96A_5BF6_7627)
    }

    @Test("every byte, the length and the seed change a block's hash")
    func blockHashSeesEveryByte() {
        for n in [1, 7, 8, 9, 31, 32, 33, 64, 65, 100] {
            var bytes = [UInt8](repeating: 0x41, count: n)
            let base = bytes.withUnsafeBytes { StableHash.block($0, seed: 3) }
            #expect(bytes.withUnsafeBytes { StableHash.block($0, seed: 4) } != base)
            for i in 0..<n {
                bytes[i] ^= 1
                #expect(bytes.withUnsafeBytes { StableHash.block($0, seed: 3) } != base, "byte \(i) of \(n)")
                bytes[i] ^= 1
            }
            let longer = (bytes + [0]).withUnsafeBytes { StableHash.block($0, seed: 3) }
            #expect(longer != base)
        }
    }

    @Test("the chain does not depend on how the text is cut into pieces", arguments: [64, 61, 8, 1])
    func chunkingIsPieceIndependent(blockBytes: Int) {
        let text = String(repeating: "system prompt line with some words. ", count: 30) + "tail"
        let whole = Self.chain(text, blockBytes: blockBytes)
        #expect(whole.count == min(256, text.utf8.count / blockBytes))  // the partial last block is not hashed
        #expect(Self.chain(text, blockBytes: blockBytes, pieces: [1, 2, 3, 500, 7, 64, 65]) == whole)
        #expect(Self.chain(text, blockBytes: blockBytes, pieces: Array(repeating: 5, count: 400)) == whole)
        #expect(Self.chain(text, blockBytes: blockBytes, maxBlocks: 3) == Array(whole.prefix(3)))
        // A change in block k changes hashes k… and leaves the ones before it.
        var changed = Array(text.utf8)
        changed[5 * blockBytes + (blockBytes - 1) / 2] ^= 0x20
        let other = Self.chain(String(decoding: changed, as: UTF8.self), blockBytes: blockBytes)
        #expect(other.prefix(5) == whole.prefix(5))
        #expect(zip(other.dropFirst(5), whole.dropFirst(5)).allSatisfy { $0 != $1 })
    }

    @Test("chat messages hash as their rendered text")
    func messagesHashAsRendered() {
        let msgs = PromptContent.messages([ChatMessage(role: "system", content: String(repeating: "abc ", count: 50)),
                                           ChatMessage(role: "user", content: String(repeating: "xyz ", count: 40))])
        var chunker = BlockChunker(blockBytes: 16, maxBlocks: 256, seed: 7, expectedBytes: PromptText.byteCount(msgs))
        PromptText.stream(msgs) { chunker.feed($0) }
        #expect(PromptText.byteCount(msgs) == PromptText.render(msgs).utf8.count)
        #expect(chunker.hashes == Self.chain(PromptText.render(msgs), blockBytes: 16))
        #expect(chunker.hashes.count == PromptText.render(msgs).utf8.count / 16)
    }

    @Test("a table holds what it was given, up to its capacity, through growth and removals")
    func tableAgreesWithASet() {
        var table = BlockTable(capacity: 5_000)
        var reference = Set<UInt64>()
        var rng = SeededGenerator(seed: 42)
        for step in 0..<20_000 {
            let h = rng.next() % 8_000 &* 0x9E37_79B9_7F4A_7C15  // repeats, so touches and removals hit members
            if step % 3 == 2 {
                #expect(table.remove(h) == reference.contains(h))
                reference.remove(h)
            } else if reference.count < 5_000 || reference.contains(h) {
                table.touch(h)
                reference.insert(h)
            }
            #expect(table.count == reference.count)
        }
        for h in reference { #expect(table.contains(h)) }
        #expect(table.slotBytes <= 8_192 * 8)
    }

    @Test("full, the table evicts members not used since the hand passed, not recently used ones")
    func clockKeepsRecentlyUsed() {
        let capacity = 1_000
        var table = BlockTable(capacity: capacity)
        let old = (1...UInt64(capacity)).map { $0 &* 0x2545_F491_4F6C_DD1D }
        for h in old { table.touch(h) }
        // A new member forces a sweep: every reference bit is cleared, one member goes.
        table.touch(1 &* 0x1234_5678_9ABC_DEF1)
        #expect(table.count == capacity)
        // The hot half is used again; the next arrivals evict only the cold half.
        let hot = Array(old.prefix(capacity / 2))
        for h in hot { table.touch(h) }
        for k in 2...UInt64(capacity / 4) { table.touch(k &* 0x1234_5678_9ABC_DEF1) }
        #expect(table.count == capacity)
        #expect(hot.allSatisfy { table.contains($0) })
    }

    @Test("match counts each candidate's leading run; forget and remove drop blocks")
    func indexMatchesLeadingRuns() {
        var index = PrefixIndex(capacityPerEndpoint: 100)
        let chain: [UInt64] = (1...10).map { $0 &* 0xDEAD_BEEF_1234_5679 }
        let candidates = [1, 2, 3].map {
            EndpointSnapshot(address: ep($0), labels: [:], waitingRequests: 0, runningRequests: 0, kvCacheUsage: 0, inFlight: 0,
                             healthy: true, metricsAge: 0, maxNumSeqs: nil)
        }
        index.insert(chain, endpoint: ep(1))
        index.insert(Array(chain.prefix(4)), endpoint: ep(2))
        #expect(index.match(chain, candidates: candidates) == [10, 4, 0])
        index.remove(chain[6...], endpoint: ep(1))
        #expect(index.match(chain, candidates: candidates) == [6, 4, 0])
        index.remove(chain[1...1], endpoint: ep(2))
        #expect(index.match(chain, candidates: candidates) == [6, 1, 0])
        index.forget(ep(1))
        #expect(index.match(chain, candidates: candidates) == [0, 1, 0])
        #expect(index.size == 3)
    }
}
