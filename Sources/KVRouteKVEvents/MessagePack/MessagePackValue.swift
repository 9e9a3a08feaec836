/// One MessagePack value, as decoded, or to be encoded.
///
/// Integers keep their sign class: `.unsigned` for every non-negative integer (so a 64-bit
/// hash above `Int64.max` survives), `.signed` for negative ones only. Map entries keep
/// their wire order (vLLM writes `type` first) and duplicates.
public indirect enum MessagePackValue: Hashable, Sendable {
    case `nil`
    case bool(Bool)
    case unsigned(UInt64)
    case signed(Int64)
    case float32(Float)
    case float64(Double)
    case string(String)
    case binary([UInt8])
    case array([MessagePackValue])
    case map([MapEntry])
    /// An extension value, kept opaque: vLLM sends none, so readers of events ignore it.
    case `extension`(type: Int8, data: [UInt8])

    public struct MapEntry: Hashable, Sendable {
        public var key: MessagePackValue
        public var value: MessagePackValue
        public init(_ key: MessagePackValue, _ value: MessagePackValue) {
            self.key = key
            self.value = value
        }
    }

    /// An integer of either sign class, normalised: non-negative values are `.unsigned`.
    public static func int(_ v: Int) -> MessagePackValue { v < 0 ? .signed(Int64(v)) : .unsigned(UInt64(v)) }

    /// A map with string keys, in the given order.
    public static func map(_ entries: KeyValuePairs<String, MessagePackValue>) -> MessagePackValue {
        .map(entries.map { MapEntry(.string($0.key), $0.value) })
    }
}

extension MessagePackValue {
    public var isNil: Bool { if case .nil = self { true } else { false } }

    /// The value as an `Int`, when it is an integer that fits.
    public var intValue: Int? {
        switch self {
        case .unsigned(let u): u <= UInt64(Int.max) ? Int(u) : nil
        case .signed(let s): Int(exactly: s)
        default: nil
        }
    }

    /// The value as a `Double`: floats, and integers (vLLM's `ts` is a float, but a hand-made
    /// producer may write an integer).
    public var doubleValue: Double? {
        switch self {
        case .float64(let d): d
        case .float32(let f): Double(f)
        case .unsigned(let u): Double(u)
        case .signed(let s): Double(s)
        default: nil
        }
    }

    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    public var arrayValue: [MessagePackValue]? { if case .array(let a) = self { a } else { nil } }
    public var mapValue: [MapEntry]? { if case .map(let m) = self { m } else { nil } }

    /// The first value under a string key of a map.
    public subscript(key: String) -> MessagePackValue? {
        guard case .map(let entries) = self else { return nil }
        for e in entries where e.key == .string(key) { return e.value }
        return nil
    }
}
