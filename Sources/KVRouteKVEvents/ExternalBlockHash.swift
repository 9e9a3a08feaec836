/// A block hash as a KV event carries it. vLLM sends either an integer — the low 64 bits of
/// the digest, big-endian (`VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES`, what 0.32 sends), or a
/// signed 64-bit Python `hash()` from older releases — or the raw digest bytes.
/// ``low64`` is the one key every form maps to.
public enum ExternalBlockHash: Hashable, Sendable {
    /// A non-negative integer (may exceed `Int64.max`).
    case unsigned(UInt64)
    /// A negative integer (only the signed `builtin` hash of old releases produces one).
    case signed(Int64)
    /// The raw digest (32 bytes for `sha256_cbor`).
    case bytes([UInt8])

    /// The 64-bit routing key: the integer's bit pattern, or the digest's last 8 bytes read
    /// big-endian (all of it when shorter) — what vLLM's integer form carries.
    public var low64: UInt64 {
        switch self {
        case .unsigned(let u): u
        case .signed(let s): UInt64(bitPattern: s)
        case .bytes(let b): b.suffix(8).reduce(0) { ($0 << 8) | UInt64($1) }
        }
    }

    /// The full digest, when the event carried it.
    public var digest: [UInt8]? { if case .bytes(let b) = self { b } else { nil } }

    init(_ value: MessagePackValue, field: String) throws(KVEventsError) {
        switch value {
        case .unsigned(let u): self = .unsigned(u)
        case .signed(let s): self = .signed(s)
        case .binary(let b): self = .bytes(b)
        default: throw .event("\(field): a block hash must be an integer or bytes, not \(value.kindName)")
        }
    }

    var messagePack: MessagePackValue {
        switch self {
        case .unsigned(let u): .unsigned(u)
        case .signed(let s): .signed(s)
        case .bytes(let b): .binary(b)
        }
    }
}

extension MessagePackValue {
    /// A short name of the value's type, for error messages.
    var kindName: String {
        switch self {
        case .nil: "nil"
        case .bool: "a bool"
        case .unsigned, .signed: "an integer"
        case .float32, .float64: "a float"
        case .string: "a string"
        case .binary: "bytes"
        case .array: "an array"
        case .map: "a map"
        case .extension: "an extension value"
        }
    }
}
