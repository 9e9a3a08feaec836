import Foundation
import KVRouteEngineSim

/// Deterministic fuzzing for the parsers of outside input: every case draws from its own
/// generator, derived from the run's seed, the suite's name and the case's index, so one
/// failing case reproduces alone.
///
/// - `KVROUTE_FUZZ_SEED`: the run's seed (default 1, the committed corpus).
/// - `KVROUTE_FUZZ_ITERATIONS`: cases per suite instead of the suite's default.
/// - `KVROUTE_FUZZ_CASE`: run only this case index (to reproduce).
/// - `KVROUTE_FUZZ_CRASH_DIR`: before each case, its input goes to `<dir>/<suite>.input`,
///   so after a trap the file holds the input that crashed.
public enum Fuzz {
    public static let seed: UInt64 = environment("KVROUTE_FUZZ_SEED").flatMap { UInt64($0) } ?? 1
    static let iterations: Int? = environment("KVROUTE_FUZZ_ITERATIONS").flatMap { Int($0) }
    static let onlyCase: Int? = environment("KVROUTE_FUZZ_CASE").flatMap { Int($0) }
    static let crashDirectory: String? = environment("KVROUTE_FUZZ_CRASH_DIR")

    static func environment(_ name: String) -> String? {
        ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Runs `cases` cases (or `KVROUTE_FUZZ_ITERATIONS`): `generate` makes an input from the
    /// case's generator, `check` feeds it to the parser. Returns the number of cases run.
    @discardableResult
    public static func run<Input>(
        _ suite: String, cases: Int, generate: (inout FuzzRandom) -> Input, bytes: (Input) -> [UInt8],
        check: (Input) throws -> Void
    ) rethrows -> Int {
        let count = iterations ?? cases
        let suiteSeed = StableName.hash(suite) ^ seed
        print("fuzz \(suite): seed \(seed), \(count) cases (KVROUTE_FUZZ_SEED=\(seed) KVROUTE_FUZZ_CASE=<n> to reproduce one)")
        var ran = 0
        for index in 0..<count where onlyCase == nil || onlyCase == index {
            var rng = FuzzRandom(seed: SplitMix64.mix(suiteSeed, UInt64(index)))
            let input = generate(&rng)
            if let dir = crashDirectory {
                let header = Array("# \(suite) seed \(seed) case \(index)\n".utf8)
                FileManager.default.createFile(atPath: dir + "/" + suite + ".input", contents: Data(header + bytes(input)))
            }
            try check(input)
            ran += 1
        }
        return ran
    }

    /// Text inputs.
    @discardableResult
    public static func run(_ suite: String, cases: Int, generate: (inout FuzzRandom) -> [UInt8], check: ([UInt8]) throws -> Void) rethrows -> Int {
        try run(suite, cases: cases, generate: generate, bytes: { $0 }, check: check)
    }
}

enum StableName {
    /// FNV-1a, so a suite's stream does not change between runs or platforms.
    static func hash(_ s: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return h
    }
}

/// A seeded generator with the draws fuzzing needs.
public struct FuzzRandom: RandomNumberGenerator {
    var base: SplitMix64
    public init(seed: UInt64) { base = SplitMix64(seed: seed) }
    public mutating func next() -> UInt64 { base.next() }

    /// 0..<n (n > 0).
    public mutating func below(_ n: Int) -> Int { Int.random(in: 0..<max(n, 1), using: &self) }
    /// True with probability `p`.
    public mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }
    public mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
    /// A length: mostly small, sometimes large, rarely huge.
    public mutating func length(small: Int = 16, large: Int = 4_096, huge: Int = 200_000) -> Int {
        let r = below(100)
        return r < 85 ? below(small + 1) : r < 99 ? below(large + 1) : huge / 2 + below(huge / 2 + 1)
    }
}

/// Generators shared by the fuzz suites.
public enum FuzzText {
    /// Numbers that break careless conversions: beyond Int64, beyond Double, negative, fractional.
    public static let numberLiterals = [
        "0", "-0", "1", "-1", "2", "7", "16", "255", "65536", "1.5", "-2.5", "0.999999", "1e-400", "1e300", "-1e300", "1e308", "1e309", "-1e400",
        "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
        "18446744073709551615", "18446744073709551616", "4294967295", "4294967296", "123456789012345678901234567890",
        "1E2", "0.0", "2147483648", "-2147483649",
    ]
    /// Tokens JSON does not allow, which some encoders still write.
    public static let badNumberLiterals = ["NaN", "Infinity", "-Infinity", "+1", "01", ".5", "1.", "0x10", "1e", "--1", "inf", "nan"]

    /// Byte sequences that are not UTF-8.
    public static let invalidUTF8: [[UInt8]] = [
        [0xFF], [0xFE, 0xFF], [0xC3], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], [0x80], [0xF0, 0x9F, 0x98],
    ]

    public static let unicodeSamples = ["é", "☕", "日本語", "🦙", "\u{0}", "\u{7F}", "\u{200B}", "\u{FEFF}", "\u{1F468}\u{200D}\u{1F469}", "\\", "\"", "\n", "\r\n", "\t", "ǅ", "\u{301}"]

    /// A random string: ASCII, escapes, Unicode, control characters; sometimes long.
    public static func string(_ r: inout FuzzRandom, maxLength: Int? = nil) -> String {
        let n = maxLength.map { r.below($0 + 1) } ?? r.length()
        var s = ""
        s.reserveCapacity(n)
        let mode = r.below(4)
        for _ in 0..<n {
            switch mode {
            case 0: s.unicodeScalars.append(Unicode.Scalar(UInt8(97 + r.below(26))))
            case 1: s += r.pick(unicodeSamples)
            default:
                if let u = Unicode.Scalar(UInt32(r.pick([r.below(128), r.below(0x800), r.below(0xD800), 0xE000 + r.below(0x2000), 0x10000 + r.below(0x1000)]))) {
                    s.unicodeScalars.append(u)
                }
            }
        }
        return s
    }

    /// A JSON string literal of `s`.
    public static func quoted(_ s: String) -> String { JSONString.quoted(s) }

    /// Byte-level damage: truncation, flips, insertions (invalid UTF-8 among them),
    /// deletions, duplicated spans.
    public static func damage(_ input: [UInt8], _ r: inout FuzzRandom) -> [UInt8] {
        var b = input
        for _ in 0..<(1 + r.below(4)) {
            switch r.below(7) {
            case 0: if !b.isEmpty { b.removeLast(r.below(b.count) + 1) }
            case 1: if !b.isEmpty { b[r.below(b.count)] ^= UInt8(1 << r.below(8)) }
            case 2: b.insert(contentsOf: r.pick(invalidUTF8), at: r.below(b.count + 1))
            case 3:
                if !b.isEmpty {
                    let at = r.below(b.count)
                    b.removeSubrange(at..<min(b.count, at + 1 + r.below(8)))
                }
            case 4:
                if !b.isEmpty {
                    let at = r.below(b.count), end = min(b.count, at + 1 + r.below(64))
                    b.insert(contentsOf: b[at..<end], at: r.below(b.count + 1))
                }
            case 5: b.insert(contentsOf: (0..<(1 + r.below(8))).map { _ in UInt8(truncatingIfNeeded: r.next()) }, at: r.below(b.count + 1))
            default: b.insert(contentsOf: Array(r.pick(["{", "}", "[", "]", "\"", ",", ":", "\\", "\n", " ", "0", "-", "e", "\0"]).utf8), at: r.below(b.count + 1))
            }
        }
        return b
    }

    /// Random bytes, sometimes long.
    public static func randomBytes(_ r: inout FuzzRandom) -> [UInt8] {
        (0..<r.length(small: 64, large: 4_096, huge: 65_536)).map { _ in UInt8(truncatingIfNeeded: r.next()) }
    }

    /// `n` opening brackets and no end: nesting that a recursive parser cannot survive.
    public static func deepNesting(_ r: inout FuzzRandom, open: String = "[", close: String = "]") -> [UInt8] {
        let n = r.pick([600, 5_000, 100_000])
        let closed = r.chance(0.5)
        return Array((String(repeating: open, count: n) + (closed ? String(repeating: close, count: n) : "")).utf8)
    }
}

/// A JSON document as a tree that can be damaged structurally before it is written out:
/// duplicated keys, missing fields, values of the wrong type, odd numbers.
public indirect enum FuzzJSON: Sendable {
    case null
    case bool(Bool)
    /// A number as written (possibly one JSON does not allow).
    case number(String)
    case string(String)
    case array([FuzzJSON])
    /// Keys in order, duplicates allowed.
    case object([(String, FuzzJSON)])

    public var text: String {
        switch self {
        case .null: "null"
        case .bool(let b): b ? "true" : "false"
        case .number(let n): n
        case .string(let s): FuzzText.quoted(s)
        case .array(let a): "[" + a.map(\.text).joined(separator: ",") + "]"
        case .object(let o): "{" + o.map { FuzzText.quoted($0.0) + ":" + $0.1.text }.joined(separator: ",") + "}"
        }
    }

    public var bytes: [UInt8] { Array(text.utf8) }

    /// A random value of any type, nested up to `depth`.
    public static func random(_ r: inout FuzzRandom, depth: Int = 3) -> FuzzJSON {
        switch r.below(depth > 0 ? 8 : 5) {
        case 0: return .null
        case 1: return .bool(r.chance(0.5))
        case 2: return .number(r.chance(0.9) ? r.pick(FuzzText.numberLiterals) : r.pick(FuzzText.badNumberLiterals))
        case 3, 4: return .string(FuzzText.string(&r))
        case 5: return .number(String(Int.random(in: -1_000_000...1_000_000, using: &r)))
        case 6: return .array((0..<r.below(5)).map { _ in random(&r, depth: depth - 1) })
        default: return .object((0..<r.below(5)).map { _ in (FuzzText.string(&r, maxLength: 12), random(&r, depth: depth - 1)) })
        }
    }

    /// One structural change somewhere in the tree: a field removed, retyped or duplicated,
    /// an element added, or the value wrapped in nesting.
    public func mutated(_ r: inout FuzzRandom, keys: [String] = []) -> FuzzJSON {
        switch self {
        case .object(var fields) where !fields.isEmpty && r.chance(0.6):
            let i = r.below(fields.count)
            switch r.below(6) {
            case 0: fields.remove(at: i)
            case 1: fields[i].1 = Self.random(&r)
            case 2: fields.insert((fields[i].0, Self.random(&r)), at: r.below(fields.count + 1))
            case 3: fields.append((keys.isEmpty ? FuzzText.string(&r, maxLength: 8) : r.pick(keys), Self.random(&r)))
            default: fields[i].1 = fields[i].1.mutated(&r, keys: keys)
            }
            return .object(fields)
        case .array(var items) where !items.isEmpty && r.chance(0.6):
            let i = r.below(items.count)
            switch r.below(4) {
            case 0: items.remove(at: i)
            case 1: items.insert(items[i].mutated(&r, keys: keys), at: i)
            case 2: items[i] = Self.random(&r)
            default: items[i] = items[i].mutated(&r, keys: keys)
            }
            return .array(items)
        default:
            switch r.below(5) {
            case 0: return Self.random(&r)
            case 1: return .array([self])
            case 2: return .object([("content", self)])
            case 3: return .string(FuzzText.string(&r))
            default: return .number(r.pick(FuzzText.numberLiterals))
            }
        }
    }

    /// A document from `seeds`, changed structurally, then sometimes damaged byte by byte;
    /// sometimes random bytes or deep nesting instead.
    public static func document(_ r: inout FuzzRandom, seeds: [FuzzJSON], keys: [String]) -> [UInt8] {
        switch r.below(20) {
        case 0: return FuzzText.randomBytes(&r)
        case 1: return FuzzText.deepNesting(&r, open: r.pick(["[", "{\"a\":", "{\"messages\":[{\"content\":"]), close: "]")
        case 2: return random(&r, depth: 4).bytes
        default:
            var doc = r.pick(seeds)
            for _ in 0..<(r.below(4)) { doc = doc.mutated(&r, keys: keys) }
            return r.chance(0.3) ? FuzzText.damage(doc.bytes, &r) : doc.bytes
        }
    }
}
