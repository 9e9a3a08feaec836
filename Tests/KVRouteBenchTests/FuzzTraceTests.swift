import Foundation
import KVRouteCore
import KVRouteTestSupport
import Testing
@testable import KVRouteBench

/// Mooncake trace files as `kvroute bench --trace` reads them: every line either becomes a
/// request or the file is refused with the line's number; building the requests never traps.
@Suite("Fuzz corpus: Mooncake traces")
struct FuzzTraceTests {
    static let keys = ["timestamp", "input_length", "output_length", "hash_ids"]

    static let seeds: [FuzzJSON] = [
        .object([("timestamp", .number("0")), ("input_length", .number("1100")), ("output_length", .number("12")), ("hash_ids", .array([.number("0"), .number("1"), .number("2")]))]),
        .object([("timestamp", .number("27482")), ("input_length", .number("300")), ("output_length", .number("1")), ("hash_ids", .array([.number("46")]))]),
        .object([("timestamp", .number("1.5")), ("input_length", .number("0")), ("output_length", .number("0")), ("hash_ids", .array([]))]),
    ]

    static func trace(_ r: inout FuzzRandom) -> [UInt8] {
        var lines: [[UInt8]] = (0..<(1 + r.below(4))).map { _ in r.chance(0.7) ? r.pick(seeds).bytes : FuzzJSON.document(&r, seeds: seeds, keys: keys) }
        if r.chance(0.2) { lines.insert(r.pick([[], Array("\r".utf8), Array("   ".utf8)]), at: r.below(lines.count + 1)) }
        return Array(lines.joined(separator: [0x0A]))
    }

    @Test("trace files: mutated lines, huge and negative numbers, damage")
    func traces() {
        let ran = Fuzz.run("mooncake-trace", cases: 3_000, generate: Self.trace) { bytes in
            do {
                let w = try TraceWorkload(text: String(decoding: bytes, as: UTF8.self), path: "fuzz.jsonl", maxOutputTokens: 64)
                for request in w.initialRequests() {
                    #expect(request.maxTokens >= 1 && request.maxTokens <= 64)
                    #expect(request.arrival?.isFinite ?? true)
                }
            } catch is KVRouteError {
            } catch {
                Issue.record("not a KVRouteError: \(error)")
            }
        }
        #expect(ran > 0)
    }

    @Test("lines that trapped: a huge or negative length, a negative or fractional hash id", arguments: [
        #"{"timestamp": 0, "input_length": 1e300, "output_length": 1, "hash_ids": [1]}"#,
        #"{"timestamp": 0, "input_length": 4611686018427387904, "output_length": 1, "hash_ids": [1]}"#,
        #"{"timestamp": 0, "input_length": -5, "output_length": 1, "hash_ids": [1]}"#,
        #"{"timestamp": 0, "input_length": 600, "output_length": 1, "hash_ids": [-1]}"#,
        #"{"timestamp": 0, "input_length": 600, "output_length": 1, "hash_ids": [1e300]}"#,
        #"{"timestamp": 1e308, "input_length": 6, "output_length": 1, "hash_ids": [1]}"#,
    ])
    func refused(line: String) {
        #expect(throws: KVRouteError.self) {
            let w = try TraceWorkload(text: #"{"timestamp": 0, "input_length": 6, "output_length": 1, "hash_ids": [1]}"# + "\n" + line, path: "t.jsonl")
            _ = w.initialRequests()
        }
    }
}
