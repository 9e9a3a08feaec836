import Foundation
import KVRouteEngineSim
@testable import KVRouteKVEvents
import KVRouteTestSupport
import Testing

/// vLLM's `sha256_cbor` block hashes against Tests/peers/block_hash_reference.py, which
/// computes them with PyPI cbor2 + hashlib the way vLLM does.
@Suite struct BlockHashReferenceTests {
    struct Case: Codable {
        var seed: String
        var block_size: Int
        var tokens: [UInt32]
        var lora_name: String?
        var cache_salt: String?
    }

    struct Answer: Decodable {
        var none_hash: String
        var hashes: [String]
        var low64: [String]
    }

    struct Answers: Decodable { var cases: [Answer] }

    /// 240 cases: 0–6 full blocks plus a partial tail, block sizes 16 and 32, token ids of
    /// every CBOR width, several seeds, with and without a LoRA name and a cache salt.
    static func cases() -> [Case] {
        var rng = SplitMix64(seed: 0x6B76_726F_7574_65)
        let seeds = ["0", "1", "42", "", "éé", "hash-seed-\(UInt64.max)"]
        return (0..<240).map { i in
            let blockSize = i % 2 == 0 ? 16 : 32
            let count = Int(rng.next() % 7) * blockSize + Int(rng.next() % UInt64(blockSize))
            let tokens = (0..<count).map { _ -> UInt32 in
                switch rng.next() % 6 {
                case 0: UInt32(rng.next() % 24)
                case 1: UInt32(24 + rng.next() % 232)
                case 2: UInt32(256 + rng.next() % 65_280)
                case 3: UInt32(65_536 + rng.next() % 62_720)
                case 4: UInt32.max - UInt32(rng.next() % 3)
                default: UInt32(rng.next() % 128_256)
                }
            }
            let lora: String? = (i / 3) % 2 == 0 ? nil : ["sql-lora", "adapter-ü", ""][i % 3]
            let salt: String? = (i / 5) % 3 == 0 ? nil : ["salt", "", "long-salt-" + String(repeating: "x", count: 40)][i % 3]
            return Case(seed: seeds[i % seeds.count], block_size: blockSize, tokens: tokens, lora_name: lora, cache_salt: salt)
        }
    }

    @Test(.enabled(if: Peers.enabled)) func matchesPythonReference() async throws {
        let cases = Self.cases()
        let body = try JSONEncoder().encode(["cases": cases])
        let answers = try await Peers.run("block_hash_reference.py", [], stdin: String(decoding: body, as: UTF8.self), as: Answers.self)
        try #require(answers.cases.count == cases.count)
        var blocks = 0, withExtraKeys = 0
        for (c, a) in zip(cases, answers.cases) {
            let hasher = VLLMBlockHasher(blockSize: c.block_size, hashSeed: c.seed)
            #expect(hex(hasher.noneHash.bytes) == a.none_hash)
            let ours = hasher.blockHashes(tokens: c.tokens, loraName: c.lora_name, cacheSalt: c.cache_salt)
            #expect(ours.map { hex($0.bytes) } == a.hashes, "seed \(c.seed) block \(c.block_size) lora \(c.lora_name ?? "-") salt \(c.cache_salt ?? "-")")
            #expect(ours.map { String($0.low64) } == a.low64)
            blocks += ours.count
            if c.lora_name != nil || !(c.cache_salt ?? "").isEmpty { withExtraKeys += 1 }
            // The engine simulator's hasher (no extra keys) agrees on plain requests.
            if c.lora_name == nil, (c.cache_salt ?? "").isEmpty {
                var sim: [BlockDigest] = []
                BlockHasher(blockSize: c.block_size, hashSeed: c.seed).extend(&sim, tokens: c.tokens)
                #expect(sim.map { String($0.low64) } == a.low64)
            }
        }
        #expect(blocks > 500)
        #expect(withExtraKeys > 50)
    }

    /// The vector REFERENCE.md records from real vLLM 0.32 (PYTHONHASHSEED=0): NONE_HASH is
    /// SHA-256 of CBOR("0") (0x61 0x30).
    @Test func noneHashOfSeedZero() {
        #expect(hex(VLLMBlockHasher(blockSize: 16, hashSeed: "0").noneHash.bytes) == "4e1195df020de59e0d65a33a4279f1183e7ae4e5d980e309f8b55adff2e61c3e")
    }

    /// vLLM's extra keys: LoRA name on every block, cache salt on the first only, in that
    /// order; none at all is `None`, and an empty salt counts as none.
    @Test func extraKeyShapes() {
        #expect(VLLMBlockHasher.extraKeys(blockIndex: 0, loraName: nil, cacheSalt: nil) == nil)
        #expect(VLLMBlockHasher.extraKeys(blockIndex: 0, loraName: nil, cacheSalt: "") == nil)
        #expect(VLLMBlockHasher.extraKeys(blockIndex: 0, loraName: "l", cacheSalt: "s") == [.string("l"), .string("s")])
        #expect(VLLMBlockHasher.extraKeys(blockIndex: 1, loraName: "l", cacheSalt: "s") == [.string("l")])
        #expect(VLLMBlockHasher.extraKeys(blockIndex: 1, loraName: nil, cacheSalt: "s") == nil)
        #expect(BlockHashExtraKey(.array([.string("mm"), .unsigned(3)])) == .tuple([.string("mm"), .integer(3)]))
    }

    /// An event's own extra keys and tokens re-derive its hashes (a chain from the root).
    @Test func eventsCarryWhatRederivesTheirHashes() throws {
        let hasher = VLLMBlockHasher(blockSize: 16, hashSeed: "0")
        let tokens = (0..<48).map { UInt32($0 * 7) }
        let digests = hasher.blockHashes(tokens: tokens, loraName: "l", cacheSalt: "s")
        let keys: [[MessagePackValue]?] = (0..<3).map { i in
            VLLMBlockHasher.extraKeys(blockIndex: i, loraName: "l", cacheSalt: "s")?.map { k in if case .string(let s) = k { .string(s) } else { .nil } }
        }
        let event = BlockStored(blockHashes: digests.map(\.external), parentBlockHash: nil, tokenIDs: tokens, blockSize: 16, loraName: "l", extraKeys: keys)
        let decoded = try KVEventBatch(decoding: KVEventBatch(ts: 0, events: [.blockStored(event)]).encoded())
        guard case .blockStored(let e) = decoded.events.first else { Issue.record("no event"); return }
        var parent: BlockHashDigest?
        for i in 0..<e.blockHashes.count {
            let extra = e.extraKeys?[i]?.compactMap(BlockHashExtraKey.init)
            let h = hasher.hash(parent: parent, tokens: e.tokens(ofBlock: i), extraKeys: extra)
            #expect(h.low64 == e.blockHashes[i].low64)
            parent = h
        }
    }
}
