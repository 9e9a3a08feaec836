import KVRouteKVEvents
import KVRouteTestSupport
import Testing
@testable import KVRouteEngineSim

/// The engine's KV events against its own cache: a subscriber that applies them holds
/// exactly the hashes a request could hit, and every hash is vLLM's for the tokens sent.
@Suite("Engine KV events")
struct EngineKVEventsTests {
    static let lora = LoRAAdapter(name: "sql-lora", id: 1)

    static func engine(blocks: Int = 48, hashBytes: Bool = false, record: Bool = true) throws -> EngineCore {
        var config = EngineConfiguration(
            model: "m", blockSize: 16, numGPUBlocks: blocks, maxNumSeqs: 8, maxNumBatchedTokens: 256, maxModelLen: 8192,
            hashSeed: "0", defaultMaxTokens: 8, latency: LatencyModel(jitter: 0))
        config.loraAdapters = [lora.name]
        config.recordKVEvents = record
        config.kvEventHashBytes = hashBytes
        return try EngineCore(configuration: config)
    }

    /// Requests sharing a few prefixes, some identical (their decode blocks are computed
    /// twice: duplicate hashes), some under a LoRA adapter or a cache salt.
    static func workload(_ n: Int) -> [EngineRequest] {
        var rng = SplitMix64(seed: 7)
        let prefixes = (0..<4).map { p in (0..<(40 + 24 * p)).map { UInt32(10_000 * (p + 1) + $0) } }
        return (0..<n).map { i in
            let prefix = prefixes[Int(rng.next() % 4)]
            let suffix = (0..<Int(rng.next() % 40)).map { _ in UInt32(rng.next() % 128_000) }
            let prompt = i % 7 == 3 ? prefix : prefix + suffix
            return EngineRequest(
                promptTokens: prompt, maxTokens: 4 + Int(rng.next() % 24),
                lora: i % 5 == 2 ? lora : nil, cacheSalt: i % 6 == 4 ? "tenant-\(i % 2)" : nil)
        }
    }

    /// Checks each stored hash by recomputing it from the event's tokens, parent and extra
    /// keys; `known` maps low-64 ids to digests computed so far.
    static func verifyHashes(_ events: [KVEvent], _ known: inout [UInt64: BlockHashDigest], hashBytes: Bool) {
        let hasher = VLLMBlockHasher(blockSize: 16, hashSeed: "0")
        for case .blockStored(let e) in events {
            var parent: BlockHashDigest?
            if let p = e.parentBlockHash {
                parent = known[p.low64]
                #expect(parent != nil, "parent \(p.low64) was never stored")
                if hashBytes { #expect(p.digest == parent?.bytes) }
            }
            #expect(e.tokenIDs.count == e.blockHashes.count * 16)
            #expect(e.extraKeys?.count == e.blockHashes.count)
            #expect(e.medium == "GPU")
            for (i, h) in e.blockHashes.enumerated() {
                let keys = e.extraKeys?[i]?.compactMap(BlockHashExtraKey.init)
                let digest = hasher.hash(parent: parent, tokens: e.tokens(ofBlock: i), extraKeys: keys)
                #expect(h.low64 == digest.low64)
                if hashBytes { #expect(h.digest == digest.bytes) } else { #expect(h == .unsigned(digest.low64)) }
                known[digest.low64] = digest
                parent = digest
            }
        }
    }

    @Test("an index built from the events equals the cache after every step: evictions, duplicates, preemptions, a reset", arguments: [false, true])
    func indexFollowsCache(hashBytes: Bool) throws {
        var e = try Self.engine(hashBytes: hashBytes)
        var index = KVEventIndex()
        var known: [UInt64: BlockHashDigest] = [:]
        var now = 0.0
        var sawDuplicate = false, sawLoRA = false, resets = 0
        let requests = Self.workload(80)
        var next = 0
        while next < requests.count || e.hasWork {
            // Up to three arrivals per step.
            for _ in 0..<3 where next < requests.count {
                _ = try e.add(requests[next], at: now)
                next += 1
            }
            now = e.step(now: now).end
            if next >= 40 && resets == 0 {
                // Requests are running: vLLM refuses a plain reset, so preempt them first.
                let refused = e.resetPrefixCache()
                let forced = e.resetPrefixCache(resetRunningRequests: true)
                #expect(!refused && forced)
                resets += 1
            }
            let events = e.takeKVEvents()
            Self.verifyHashes(events, &known, hashBytes: hashBytes)
            for case .blockStored(let s) in events where s.loraName != nil {
                #expect(s.loraName == Self.lora.name && s.loraID == Self.lora.id)
                #expect(s.extraKeys?.allSatisfy { $0?.first == .string(Self.lora.name) } == true)
                sawLoRA = true
            }
            index.apply(KVEventBatch(ts: now, events: events))
            #expect(index.hashes == e.pool.cachedHashes)
            #expect(index.counts.values.reduce(0, +) == e.pool.cachedBlockCount)
            sawDuplicate = sawDuplicate || index.counts.values.contains { $0 > 1 }
        }
        #expect(index.problems.isEmpty)
        #expect(index.removed > 20)
        #expect(index.cleared == 1)
        #expect(sawDuplicate)
        #expect(sawLoRA)
        #expect(e.pool.evictions == index.removed)
        #expect(e.stats.preemptions > 0)
    }

    @Test("a prompt's stored hashes are vLLM's for its tokens, LoRA name and cache salt")
    func promptHashes() throws {
        var e = try Self.engine()
        let prompt = tokens(70)
        for (lora, salt) in [(nil, nil), (Self.lora, nil), (nil, "s"), (Self.lora, "s")] as [(LoRAAdapter?, String?)] {
            _ = runSequentially(&e, [EngineRequest(promptTokens: prompt, maxTokens: 1, lora: lora, cacheSalt: salt)])
            let stored = e.takeKVEvents().compactMap { if case .blockStored(let s) = $0 { s } else { nil } }
            let expected = VLLMBlockHasher(blockSize: 16, hashSeed: "0").blockHashes(tokens: prompt, loraName: lora?.name, cacheSalt: salt)
            #expect(stored.first?.parentBlockHash == nil)
            #expect(stored.flatMap(\.blockHashes) == expected.map(\.external))
            #expect(stored.first?.extraKeys?.first == VLLMBlockHasher.extraKeys(blockIndex: 0, loraName: lora?.name, cacheSalt: salt)?.map { k in
                if case .string(let s) = k { .string(s) } else { .nil }
            })
            #expect(e.cachedPrefixTokens(of: prompt, lora: lora, cacheSalt: salt) == 64)
        }
        // Four distinct chains: the LoRA name and the salt each key their own prefix.
        #expect(e.pool.cachedHashCount == 16)
    }

    @Test("an engine not asked for events records none")
    func noEventsUnlessAsked() throws {
        var e = try Self.engine(record: false)
        _ = runSequentially(&e, Self.workload(20))
        let reset = e.resetPrefixCache()
        #expect(reset)
        #expect(e.takeKVEvents().isEmpty)
    }
}
