import Foundation
@testable import KVRouteKVEvents
import KVRouteTestSupport
import Testing

@Suite struct KVEventCodecTests {
    static let stored = BlockStored(
        blockHashes: [.unsigned(UInt64.max), .signed(-42), .bytes([UInt8](repeating: 0xAB, count: 32))],
        parentBlockHash: .unsigned(7), tokenIDs: (0..<48).map { UInt32($0 * 1_000) }, blockSize: 16, loraID: 3, medium: "GPU",
        loraName: "adapter", extraKeys: [[.string("adapter"), .string("salt")], [.string("adapter")], nil], groupIdx: 0,
        kvCacheSpecKind: "full_attention"
    )
    static let batch = KVEventBatch(
        ts: 1_752_000_000.25,
        events: [.blockStored(stored), .blockRemoved(BlockRemoved(blockHashes: [.unsigned(1)], medium: nil, groupIdx: 2)), .allBlocksCleared],
        dataParallelRank: 1
    )

    @Test(arguments: [KVEventWireFormat.vllm032, .named, .positional, .init(batch: .named, events: .positional)])
    func roundTrip(format: KVEventWireFormat) throws {
        #expect(try KVEventBatch(decoding: Self.batch.encoded(format)) == Self.batch)
        let bare = KVEventBatch(ts: 0, events: [.blockStored(BlockStored(blockHashes: [], parentBlockHash: nil, tokenIDs: [], blockSize: 32, medium: nil))], dataParallelRank: nil)
        #expect(try KVEventBatch(decoding: bare.encoded(format)) == bare)
    }

    /// The layout vLLM 0.32.0 was seen to send: a positional batch, events as maps of 11
    /// named fields with `type` first, defaulted fields left out.
    @Test func vllm032Layout() throws {
        let value = try MessagePackDecoder().decode(Self.batch.encoded(.vllm032))
        let items = try #require(value.arrayValue)
        #expect(items.count == 3)
        let event = try #require(items[1].arrayValue?.first?.mapValue)
        #expect(event.map(\.key.stringValue) == [
            "type", "block_hashes", "parent_block_hash", "token_ids", "block_size", "lora_id", "medium", "lora_name",
            "extra_keys", "group_idx", "kv_cache_spec_kind",
        ])
        #expect(event[0].value == .string("BlockStored"))
        let removed = try #require(items[1].arrayValue?[1].mapValue)
        #expect(removed.map(\.key.stringValue) == ["type", "block_hashes", "medium", "group_idx"])
        #expect(removed[2].value == .nil)
        let positional = try MessagePackDecoder().decode(Self.batch.encoded(.positional)).arrayValue?[1].arrayValue
        #expect(positional?[0].arrayValue?.count == 11)
        #expect(positional?[2] == .array([.string("AllBlocksCleared")]))
    }

    @Test func unknownFieldsAndEventsAreSkipped() throws {
        let value = MessagePackValue.array([
            .float64(3),
            .array([
                .map(["type": .string("BlockRemoved"), "block_hashes": .array([.unsigned(9)]), "medium": .string("CPU"), "new_field": .array([.extension(type: 1, data: [1])])]),
                .map(["type": .string("BlockMoved"), "anything": .nil]),
                .array([.string("FutureEvent"), .unsigned(1)]),
                .array([.string("BlockRemoved"), .array([.binary([1, 2])]), .nil, .unsigned(0), .string("extra positional")]),
            ]),
            .unsigned(0),
            .string("a fourth batch field"),
        ])
        let batch = try KVEventBatch(decoding: MessagePackEncoder().encode(value))
        #expect(batch.skippedEvents == 2)
        #expect(batch.events == [
            .blockRemoved(BlockRemoved(blockHashes: [.unsigned(9)], medium: "CPU")),
            .blockRemoved(BlockRemoved(blockHashes: [.bytes([1, 2])], medium: nil, groupIdx: 0)),
        ])
        #expect(ExternalBlockHash.bytes([1, 2]).low64 == 0x0102)
        #expect(ExternalBlockHash.signed(-1).low64 == UInt64.max)
    }

    /// Batches out of shape: each is an error that names what is wrong.
    @Test(arguments: [
        (MessagePackValue.string("batch"), "array or a map"),
        (.array([.float64(1)]), "positional batch"),
        (.array([.string("x"), .array([])]), "ts"),
        (.array([.float64(1), .map([MessagePackValue.MapEntry]())]), "events must be an array"),
        (.array([.float64(1), .array([]), .string("rank")]), "data_parallel_rank"),
        (.array([.float64(1), .array([.unsigned(1)])]), "events[0]"),
        (.array([.float64(1), .array([.map(["block_hashes": .array([])])])]), "type"),
        (.array([.float64(1), .array([.array([])])]), "type name"),
        (.array([.float64(1), .array([.array([.string("BlockStored"), .array([])])])]), "at least 4"),
        (.array([.float64(1), .array([.map(["type": .string("BlockStored"), "block_hashes": .array([.string("h")]), "token_ids": .array([]), "block_size": .unsigned(16)])])]), "block hash"),
        (.array([.float64(1), .array([.map(["type": .string("BlockStored"), "block_hashes": .array([]), "token_ids": .array([.signed(-1)]), "block_size": .unsigned(16)])])]), "token id"),
        (.array([.float64(1), .array([.map(["type": .string("BlockStored"), "block_hashes": .array([]), "token_ids": .array([.unsigned(1 << 33)]), "block_size": .unsigned(16)])])]), "token id"),
        (.array([.float64(1), .array([.map(["type": .string("BlockStored"), "block_hashes": .array([]), "token_ids": .array([]), "block_size": .unsigned(0)])])]), "block_size"),
        (.array([.float64(1), .array([.map(["type": .string("BlockStored"), "block_hashes": .array([]), "token_ids": .array([]), "block_size": .unsigned(16), "extra_keys": .array([.string("x")])])])]), "extra_keys[0]"),
        (.array([.float64(1), .array([.map(["type": .string("BlockStored"), "block_hashes": .array([]), "token_ids": .array([]), "block_size": .unsigned(16), "medium": .unsigned(1)])])]), "medium"),
        (.array([.float64(1), .array([.map(["type": .string("BlockRemoved")])])]), "block_hashes"),
    ] as [(MessagePackValue, String)])
    func malformedBatches(value: MessagePackValue, mentions: String) {
        let error = #expect(throws: KVEventsError.self) { try KVEventBatch(decoding: MessagePackEncoder().encode(value)) }
        #expect(error?.code == .malformedEvent)
        #expect(error?.message.contains(mentions) == true, "\(error?.message ?? "")")
    }

    /// Damaged real batches: decoding ends in a batch or an error, never a trap.
    @Test func fuzzedBatchesNeverTrap() {
        let payloads = [KVEventWireFormat.vllm032, .named, .positional].map { Self.batch.encoded($0) }
        Fuzz.run("kv-event-batch", cases: 3_000, generate: { r in FuzzText.damage(r.pick(payloads), &r) }) { bytes in
            _ = try? KVEventBatch(decoding: bytes)
        }
    }

    // MARK: - Against an independent Python producer and reader

    struct Built: Decodable {
        struct Case: Decodable {
            var form: String
            var batch: BatchDescription
            var payload: String
        }
        var cases: [Case]
    }

    /// Batches built by Python's msgpack in all three of vLLM's layouts (uint64 hashes
    /// above Int64.max, negative ones, digests as bytes, extra keys, unknown event types)
    /// decode to what the script says they hold.
    @Test(.enabled(if: Peers.enabled)) func decodesPythonBatches() async throws {
        let built = try await Peers.run("kv_events_reference.py", ["build", "--count", "150", "--seed", "7"], as: Built.self)
        #expect(built.cases.count == 150)
        var skipped = 0
        for c in built.cases {
            let batch = try KVEventBatch(decoding: unhex(c.payload))
            #expect(BatchDescription(batch) == c.batch, "\(c.form): \(c.payload.prefix(80))")
            skipped += batch.skippedEvents
        }
        #expect(skipped > 0)
        #expect(Set(built.cases.map(\.form)) == ["vllm032", "named", "positional"])
    }

    struct Decoded: Decodable {
        struct Batch: Decodable {
            var batch: BatchDescription
            var batch_shape: String
            var event_shapes: [String]
        }
        var batches: [Batch]
    }

    /// What we encode, Python's msgpack reads back as the same batch, in the layout asked for.
    @Test(.enabled(if: Peers.enabled)) func pythonDecodesOurBatches() async throws {
        let formats: [KVEventWireFormat] = [.vllm032, .named, .positional]
        let payloads = formats.map { hex(Self.batch.encoded($0)) }
        let body = try JSONEncoder().encode(["payloads": payloads])
        let decoded = try await Peers.run("kv_events_reference.py", ["decode"], stdin: String(decoding: body, as: UTF8.self), as: Decoded.self)
        #expect(decoded.batches.count == 3)
        for d in decoded.batches { #expect(d.batch == BatchDescription(Self.batch, skipped: false)) }
        #expect(decoded.batches.map(\.batch_shape) == ["array", "map", "array"])
        #expect(decoded.batches[0].event_shapes[0].hasPrefix("map:type,block_hashes,parent_block_hash,token_ids,block_size,lora_id,medium,lora_name,extra_keys,group_idx,kv_cache_spec_kind"))
        #expect(decoded.batches[2].event_shapes == ["array:11", "array:4", "array:1"])
    }
}
