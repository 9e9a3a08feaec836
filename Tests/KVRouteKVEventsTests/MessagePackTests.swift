@testable import KVRouteKVEvents
import KVRouteTestSupport
import Testing

@Suite struct MessagePackTests {
    let decoder = MessagePackDecoder()
    let encoder = MessagePackEncoder()

    /// Byte-exact encodings from the MessagePack spec, at every width boundary.
    @Test(arguments: [
        (MessagePackValue.nil, [0xC0]),
        (.bool(false), [0xC2]),
        (.bool(true), [0xC3]),
        (.unsigned(0), [0x00]),
        (.unsigned(127), [0x7F]),
        (.unsigned(128), [0xCC, 0x80]),
        (.unsigned(255), [0xCC, 0xFF]),
        (.unsigned(256), [0xCD, 0x01, 0x00]),
        (.unsigned(65_535), [0xCD, 0xFF, 0xFF]),
        (.unsigned(65_536), [0xCE, 0x00, 0x01, 0x00, 0x00]),
        (.unsigned(4_294_967_295), [0xCE, 0xFF, 0xFF, 0xFF, 0xFF]),
        (.unsigned(4_294_967_296), [0xCF, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]),
        (.unsigned(UInt64(Int64.max) + 1), [0xCF, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
        (.unsigned(UInt64.max), [0xCF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
        (.signed(-1), [0xFF]),
        (.signed(-32), [0xE0]),
        (.signed(-33), [0xD0, 0xDF]),
        (.signed(-128), [0xD0, 0x80]),
        (.signed(-129), [0xD1, 0xFF, 0x7F]),
        (.signed(-32_768), [0xD1, 0x80, 0x00]),
        (.signed(-32_769), [0xD2, 0xFF, 0xFF, 0x7F, 0xFF]),
        (.signed(Int64(Int32.min)), [0xD2, 0x80, 0x00, 0x00, 0x00]),
        (.signed(Int64(Int32.min) - 1), [0xD3, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF]),
        (.signed(Int64.min), [0xD3, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
        (.float32(1.5), [0xCA, 0x3F, 0xC0, 0x00, 0x00]),
        (.float64(1.5), [0xCB, 0x3F, 0xF8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
        (.string(""), [0xA0]),
        (.string("GPU"), [0xA3, 0x47, 0x50, 0x55]),
        (.binary([1, 2]), [0xC4, 0x02, 0x01, 0x02]),
        (.array([]), [0x90]),
        (.array([.unsigned(1), .nil]), [0x92, 0x01, 0xC0]),
        (.map(["type": .string("x")]), [0x81, 0xA4, 0x74, 0x79, 0x70, 0x65, 0xA1, 0x78]),
        (.extension(type: 5, data: [9]), [0xD4, 0x05, 0x09]),
        (.extension(type: -1, data: [1, 2, 3]), [0xC7, 0x03, 0xFF, 0x01, 0x02, 0x03]),
    ] as [(MessagePackValue, [UInt8])])
    func specEncodings(value: MessagePackValue, bytes: [UInt8]) throws {
        #expect(encoder.encode(value) == bytes)
        #expect(try decoder.decode(bytes) == value)
    }

    /// Lengths that cross the 8/16/32-bit headers keep their content.
    @Test(arguments: [0, 15, 16, 31, 32, 255, 256, 65_535, 65_536, 70_000])
    func lengthBoundaries(n: Int) throws {
        let text = String(repeating: "é", count: n / 2) + String(repeating: "a", count: n % 2)
        let values: [MessagePackValue] = [
            .string(text), .binary([UInt8](repeating: 7, count: n)), .array([MessagePackValue](repeating: .unsigned(1), count: n)),
            .map((0..<n).map { .init(.unsigned(UInt64($0)), .nil) }), .extension(type: 1, data: [UInt8](repeating: 1, count: n)),
        ]
        for v in values { #expect(try decoder.decode(encoder.encode(v)) == v) }
    }

    /// Widths an encoder need not use (msgspec writes int8 for -5 the short way, another
    /// producer may not): every width decodes to the same normalised value.
    @Test func nonMinimalWidthsDecode() throws {
        #expect(try decoder.decode([0xCF, 0, 0, 0, 0, 0, 0, 0, 5]) == .unsigned(5))
        #expect(try decoder.decode([0xD3, 0, 0, 0, 0, 0, 0, 0, 5]) == .unsigned(5))
        #expect(try decoder.decode([0xD0, 0x05]) == .unsigned(5))
        #expect(try decoder.decode([0xD1, 0xFF, 0xFB]) == .signed(-5))
        #expect(try decoder.decode([0xD9, 0x01, 0x61]) == .string("a"))
        #expect(try decoder.decode([0xDC, 0x00, 0x01, 0xC0]) == .array([.nil]))
        #expect(try decoder.decode([0xDF, 0x00, 0x00, 0x00, 0x00]) == .map([MessagePackValue.MapEntry]()))
        #expect(try decoder.decode([0xC8, 0x00, 0x01, 0x07, 0xAA]) == .extension(type: 7, data: [0xAA]))
    }

    /// Hostile input: each case is rejected with an error, never a trap or a huge allocation.
    @Test(arguments: [
        ("empty", []),
        ("reserved 0xc1", [0xC1]),
        ("truncated uint64", [0xCF, 0xFF]),
        ("str32 claims 4 GiB", [0xDB, 0xFF, 0xFF, 0xFF, 0xFF, 0x61]),
        ("bin32 claims 4 GiB", [0xC6, 0xFF, 0xFF, 0xFF, 0xFF]),
        ("array32 claims 4 billion items", [0xDD, 0xFF, 0xFF, 0xFF, 0xFF, 0xC0]),
        ("map32 claims 4 billion entries", [0xDF, 0xFF, 0xFF, 0xFF, 0xFF, 0xC0, 0xC0]),
        ("map with a key and no value", [0x81, 0xC0]),
        ("ext32 claims 4 GiB", [0xC9, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
        ("fixext16 short", [0xD8, 0x01, 0x00]),
        ("invalid UTF-8 string", [0xA2, 0xC3, 0x28]),
        ("trailing bytes", [0xC0, 0xC0]),
        ("fixarray short", [0x93, 0x01]),
    ] as [(String, [UInt8])])
    func hostileInputIsAnError(name: String, bytes: [UInt8]) {
        #expect(throws: KVEventsError.self, "\(name)") { try decoder.decode(bytes) }
    }

    @Test func nestingAndValueLimits() throws {
        let deep = [UInt8](repeating: 0x91, count: 100_000) + [0xC0]
        let error = #expect(throws: KVEventsError.self) { try decoder.decode(deep) }
        #expect(error?.message.contains("nesting") == true)
        let ok = [UInt8](repeating: 0x91, count: 64) + [0xC0]
        #expect(throws: Never.self) { try decoder.decode(ok) }
        let small = MessagePackDecoder(limits: .init(maxDepth: 8, maxValues: 10))
        #expect(throws: KVEventsError.self) { try small.decode(encoder.encode(.array([MessagePackValue](repeating: .nil, count: 20)))) }
        #expect(throws: KVEventsError.self) { try small.decode([UInt8](repeating: 0x91, count: 9) + [0xC0]) }
    }

    /// Thousands of random and damaged documents: the decoder answers every one with a value
    /// or an error; whatever it accepts re-encodes to bytes it decodes to the same value.
    @Test func fuzzedInputsNeverTrap() throws {
        let seeds: [MessagePackValue] = [
            KVEventBatch(ts: 1.5, events: [.allBlocksCleared], dataParallelRank: 0).messagePack(.vllm032),
            .array([.unsigned(UInt64.max), .signed(Int64.min), .float32(-0), .string("日本"), .binary([0, 255]), .extension(type: -3, data: [1])]),
            .map(["ts": .float64(2), "events": .array([.map(["type": .string("BlockRemoved"), "block_hashes": .array([.unsigned(1)])])])]),
        ]
        let limits = MessagePackDecoder(limits: .init(maxDepth: 64, maxValues: 200_000))
        var accepted = 0
        let ran = try Fuzz.run("msgpack", cases: 5_000, generate: { r -> [UInt8] in
            switch r.below(3) {
            case 0: return FuzzText.randomBytes(&r)
            case 1: return FuzzText.damage(MessagePackEncoder().encode(r.pick(seeds)), &r)
            default:
                // Headers with random lengths spliced into a valid document.
                var b = MessagePackEncoder().encode(r.pick(seeds))
                let header: [UInt8] = [r.pick([0xDC, 0xDD, 0xDE, 0xDF, 0xDA, 0xDB, 0xC5, 0xC6, 0xC8, 0xC9, 0xD9, 0xC4, 0xC7])]
                b.insert(contentsOf: header + (0..<4).map { _ in UInt8(truncatingIfNeeded: r.next()) }, at: r.below(b.count + 1))
                return b
            }
        }) { bytes in
            guard let value = try? limits.decode(bytes) else { return }
            accepted += 1
            // Bytes, not values: a NaN never equals itself.
            let once = encoder.encode(value)
            let again = try limits.decode(once)
            #expect(encoder.encode(again) == once)
            // Whatever decodes as MessagePack either is a batch or is rejected cleanly.
            _ = try? KVEventBatch(value)
        }
        #expect(ran >= 5_000 || ran == 1)
        #expect(accepted > 0)
    }
}
