import Foundation
import KVRouteKVEvents
import KVRoutePrecise
import Testing

/// The event-driven index on its own: batches in, per-engine block sets and prefix matches out.
@Suite("Precise block index")
struct PreciseBlockIndexTests {
    static let model = "llama"

    static func stored(_ hashes: [UInt64], lora: String? = nil, medium: String? = "GPU") -> KVEvent {
        .blockStored(BlockStored(blockHashes: hashes.map { .unsigned($0) }, parentBlockHash: nil, tokenIDs: [], blockSize: 16, medium: medium, loraName: lora))
    }

    static func removed(_ hashes: [UInt64]) -> KVEvent {
        .blockRemoved(BlockRemoved(blockHashes: hashes.map { .unsigned($0) }))
    }

    static func batch(_ events: KVEvent...) -> KVEventBatch { KVEventBatch(ts: 0, events: events) }

    @Test("a hash stored twice leaves with its second removal (vLLM re-sends BlockStored for a recomputed block)")
    func duplicateStores() {
        var index = PreciseBlockIndex()
        index.apply(Self.batch(Self.stored([1, 2, 3]), Self.stored([3])), engine: "a", model: Self.model)
        #expect(index.copies(of: 3, engine: "a") == 2)
        index.apply(Self.batch(Self.removed([3])), engine: "a", model: Self.model)
        #expect(index.hashes(engine: "a") == [1, 2, 3])
        index.apply(Self.batch(Self.removed([3, 9])), engine: "a", model: Self.model)
        #expect(index.hashes(engine: "a") == [1, 2])
        #expect(index.statistics.unknownRemovals == 1)
        #expect(index.count == 2 && index.count(engine: "a") == 2)
    }

    @Test("matches are unbroken runs from the first block, per engine, within one model and adapter")
    func prefixRunsAndScopes() {
        var index = PreciseBlockIndex()
        index.apply(Self.batch(Self.stored([1, 2, 3, 4])), engine: "a", model: Self.model)
        index.apply(Self.batch(Self.stored([1, 2]), Self.stored([4])), engine: "b", model: Self.model)
        index.apply(Self.batch(Self.stored([1, 2, 3], lora: "sql")), engine: "c", model: Self.model)
        index.apply(Self.batch(Self.stored([1, 2, 3])), engine: "d", model: "other-model")
        index.apply(Self.batch(Self.stored([2, 3])), engine: "e", model: Self.model)
        #expect(index.matchedBlocks([1, 2, 3, 4, 5], model: Self.model) == ["a": 4, "b": 2])
        #expect(index.matchedBlocks([1, 2, 3], model: Self.model, lora: "sql") == ["c": 3])
        #expect(index.matchedBlocks([1, 2], model: "other-model") == ["d": 2])
        #expect(index.matchedBlocks([7, 1], model: Self.model).isEmpty)
        #expect(index.matchedBlocks([1], model: "unknown").isEmpty)
    }

    @Test("AllBlocksCleared and drop(engine:) forget one engine only; CPU-tier blocks are left out")
    func clearingAndMedium() {
        var index = PreciseBlockIndex()
        index.apply(Self.batch(Self.stored([1, 2])), engine: "a", model: Self.model)
        index.apply(Self.batch(Self.stored([1, 2])), engine: "b", model: Self.model)
        index.apply(Self.batch(Self.stored([5], medium: "CPU")), engine: "b", model: Self.model)
        #expect(index.hashes(engine: "b") == [1, 2])
        index.apply(Self.batch(Self.stored([3]), .allBlocksCleared, Self.stored([4])), engine: "a", model: Self.model)
        #expect(index.hashes(engine: "a") == [4])
        #expect(index.hashes(engine: "b") == [1, 2])
        index.drop(engine: "b")
        #expect(index.hashes(engine: "b").isEmpty && index.count == 1)
        #expect(index.matchedBlocks([1], model: Self.model).isEmpty)
    }

    @Test("the memory budget evicts the least recently stored entry; a store refreshes it")
    func budgetEvictsOldest() {
        var index = PreciseBlockIndex(.init(memoryBudgetBytes: 3 * PreciseBlockIndex.bytesPerEntry))
        #expect(index.configuration.capacity == 3)
        index.apply(Self.batch(Self.stored([1, 2, 3])), engine: "a", model: Self.model)
        index.apply(Self.batch(Self.stored([1])), engine: "a", model: Self.model)  // 1 is now the newest
        index.apply(Self.batch(Self.stored([4])), engine: "a", model: Self.model)
        #expect(index.hashes(engine: "a") == [1, 3, 4])
        #expect(index.statistics.evicted == 1)
        index.apply(Self.batch(Self.removed([2])), engine: "a", model: Self.model)  // evicted: ignored
        #expect(index.count == 3 && index.statistics.unknownRemovals == 1)
    }

    @Test("random streams for several engines: the index equals a per-engine count model", arguments: [1, 2, 3] as [UInt64])
    func randomAgainstModel(seed: UInt64) {
        var rng = SplitMix(seed)
        var index = PreciseBlockIndex()
        var truth: [String: [UInt64: Int]] = [:]
        let engines = ["e0", "e1", "e2"]
        for _ in 0..<3_000 {
            let e = engines[Int(rng.next() % 3)]
            let h = rng.next() % 200
            switch rng.next() % 10 {
            case 0..<6:
                index.apply(Self.batch(Self.stored([h])), engine: e, model: Self.model)
                truth[e, default: [:]][h, default: 0] += 1
            case 6..<9:
                index.apply(Self.batch(Self.removed([h])), engine: e, model: Self.model)
                if let n = truth[e]?[h] { truth[e]![h] = n > 1 ? n - 1 : nil }
            default:
                if rng.next() % 20 == 0 {
                    index.apply(Self.batch(.allBlocksCleared), engine: e, model: Self.model)
                    truth[e] = [:]
                }
            }
        }
        for e in engines {
            #expect(index.hashes(engine: e) == Set((truth[e] ?? [:]).keys))
            for (h, n) in truth[e] ?? [:] { #expect(index.copies(of: h, engine: e) == n) }
        }
    }

    @Test("seq numbers: in order, a gap names the lost batches, a step back is a restart")
    func sequences() {
        var s = EventSequence()
        #expect(s.observe(5) == .first)
        #expect(s.observe(6) == .inOrder)
        #expect(s.observe(9) == .gap(missing: 7..<9))
        #expect(s.observe(10) == .inOrder)
        #expect(s.observe(0) == .restarted(missing: 0..<0))
        #expect(s.observe(1) == .inOrder)
        #expect(s.observe(0) == .restarted(missing: 0..<0))
        #expect(s.observe(3) == .gap(missing: 1..<3))
        #expect(s.observe(2) == .restarted(missing: 0..<2))
    }

    @Test("index size: bytes per block printed for the record (1M entries over 4 engines)")
    func bytesPerBlock() {
        var index = PreciseBlockIndex(.init(memoryBudgetBytes: 1 << 30))
        var rng = SplitMix(9)
        let before = Self.heapBytes()
        for i in 0..<4 {
            var batch: [UInt64] = []
            for _ in 0..<250_000 {
                batch.append(rng.next())
                if batch.count == 64 {
                    index.apply(Self.batch(Self.stored(batch)), engine: "engine-\(i)", model: Self.model)
                    batch.removeAll(keepingCapacity: true)
                }
            }
            index.apply(Self.batch(Self.stored(batch)), engine: "engine-\(i)", model: Self.model)
        }
        let heap = Self.heapBytes() - before
        #expect(index.count == 1_000_000)
        print("PreciseBlockIndex: \(index.count) entries, allocated \(index.allocatedBytes) bytes = \(index.allocatedBytes / index.count) bytes per block; resident memory grew \(heap) bytes = \(heap / index.count) per block; budget figure \(PreciseBlockIndex.bytesPerEntry)")
    }

    /// Resident bytes (Linux `/proc/self/statm`; 0 elsewhere).
    static func heapBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        return fields.count > 1 ? (Int(fields[1]) ?? 0) * 4096 : 0
    }
}

/// A small deterministic generator (SplitMix64).
struct SplitMix {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
