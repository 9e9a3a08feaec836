import Crypto

/// A block's full SHA-256 hash under vLLM's `sha256_cbor`; the next block's hash chains it.
public struct BlockHashDigest: Hashable, Sendable, CustomStringConvertible {
    /// The 32 digest bytes.
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// The 64-bit id KV events carry: the last 8 digest bytes, big-endian.
    public var low64: UInt64 { bytes.suffix(8).reduce(0) { ($0 << 8) | UInt64($1) } }

    /// The hash as vLLM 0.32 puts it in an event (the integer form).
    public var external: ExternalBlockHash { .unsigned(low64) }

    public var description: String { bytes.map { String($0, radix: 16).leftPadded(2) }.joined() }
}

/// One item of a block's extra keys: the LoRA name, the cache salt (first block only), a
/// multimodal `(identifier, offset)` tuple, a prompt-embeddings digest.
public indirect enum BlockHashExtraKey: Hashable, Sendable {
    case string(String)
    case integer(Int64)
    case bytes([UInt8])
    case tuple([BlockHashExtraKey])

    /// The key as a KV event carries it (`extra_keys` entries are MessagePack arrays).
    public init?(_ value: MessagePackValue) {
        switch value {
        case .string(let s): self = .string(s)
        case .unsigned(let u): guard let i = Int64(exactly: u) else { return nil }; self = .integer(i)
        case .signed(let s): self = .integer(s)
        case .binary(let b): self = .bytes(b)
        case .array(let items):
            var keys: [BlockHashExtraKey] = []
            for item in items {
                guard let k = BlockHashExtraKey(item) else { return nil }
                keys.append(k)
            }
            self = .tuple(keys)
        default: return nil
        }
    }
}

/// vLLM's `sha256_cbor` prefix-cache hash, extra keys included:
/// `NONE_HASH = SHA-256(CBOR(str(PYTHONHASHSEED)))`; block i's hash is
/// `SHA-256(CBOR((parent or NONE_HASH, tuple(tokens), extra_keys or None)))` in canonical CBOR,
/// where `extra_keys` is `(lora_name?, mm keys…, cache_salt? (block 0 only))` or `None`.
/// Without a seed vLLM draws NONE_HASH at random, so no one outside the process can agree.
public struct VLLMBlockHasher: Sendable {
    public let noneHash: BlockHashDigest
    public let blockSize: Int

    public init(blockSize: Int, hashSeed: String) {
        var cbor = CanonicalCBOR()
        cbor.text(hashSeed)
        self.init(blockSize: blockSize, noneHash: BlockHashDigest(bytes: Array(SHA256.hash(data: cbor.bytes))))
    }

    public init(blockSize: Int, noneHash: BlockHashDigest) {
        self.blockSize = blockSize
        self.noneHash = noneHash
    }

    /// The hash of one full block given its parent (`nil` for the first block).
    public func hash(parent: BlockHashDigest?, tokens: some Collection<UInt32>, extraKeys: [BlockHashExtraKey]?) -> BlockHashDigest {
        var cbor = CanonicalCBOR()
        cbor.arrayHeader(3)
        cbor.byteString((parent ?? noneHash).bytes)
        cbor.arrayHeader(tokens.count)
        for t in tokens { cbor.unsigned(UInt64(t)) }
        if let extraKeys { cbor.key(.tuple(extraKeys)) } else { cbor.null() }
        return BlockHashDigest(bytes: Array(SHA256.hash(data: cbor.bytes)))
    }

    /// vLLM's `generate_block_hash_extra_keys` for text requests: the LoRA name on every
    /// block, then the cache salt on the first block; `nil` when there is neither.
    public static func extraKeys(blockIndex: Int, loraName: String?, cacheSalt: String?) -> [BlockHashExtraKey]? {
        var keys: [BlockHashExtraKey] = []
        if let loraName { keys.append(.string(loraName)) }
        if blockIndex == 0, let cacheSalt, !cacheSalt.isEmpty { keys.append(.string(cacheSalt)) }
        return keys.isEmpty ? nil : keys
    }

    /// The hashes of every full block of `tokens`.
    public func blockHashes(tokens: [UInt32], loraName: String? = nil, cacheSalt: String? = nil) -> [BlockHashDigest] {
        guard blockSize > 0 else { return [] }
        var out: [BlockHashDigest] = []
        out.reserveCapacity(tokens.count / blockSize)
        for i in 0..<(tokens.count / blockSize) {
            let keys = Self.extraKeys(blockIndex: i, loraName: loraName, cacheSalt: cacheSalt)
            out.append(hash(parent: out.last, tokens: tokens[(i * blockSize)..<((i + 1) * blockSize)], extraKeys: keys))
        }
        return out
    }
}

/// The canonical CBOR items (RFC 8949 §4.2.1, shortest heads) the block hash needs.
struct CanonicalCBOR {
    var bytes: [UInt8] = []

    init() { bytes.reserveCapacity(256) }

    mutating func head(_ major: UInt8, _ value: UInt64) {
        let m = major << 5
        switch value {
        case 0..<24: bytes.append(m | UInt8(value))
        case 24..<0x100: bytes.append(m | 24); append(value, 1)
        case 0x100..<0x1_0000: bytes.append(m | 25); append(value, 2)
        case 0x1_0000..<0x1_0000_0000: bytes.append(m | 26); append(value, 4)
        default: bytes.append(m | 27); append(value, 8)
        }
    }

    mutating func append(_ v: UInt64, _ width: Int) {
        for i in stride(from: width - 1, through: 0, by: -1) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(i * 8))) }
    }

    mutating func unsigned(_ v: UInt64) { head(0, v) }
    mutating func integer(_ v: Int64) { if v >= 0 { head(0, UInt64(v)) } else { head(1, UInt64(-(v + 1))) } }
    mutating func arrayHeader(_ n: Int) { head(4, UInt64(n)) }
    mutating func null() { bytes.append(0xF6) }
    mutating func text(_ s: String) { head(3, UInt64(s.utf8.count)); bytes.append(contentsOf: s.utf8) }
    mutating func byteString(_ b: [UInt8]) { head(2, UInt64(b.count)); bytes.append(contentsOf: b) }

    mutating func key(_ k: BlockHashExtraKey) {
        switch k {
        case .string(let s): text(s)
        case .integer(let i): integer(i)
        case .bytes(let b): byteString(b)
        case .tuple(let items):
            arrayHeader(items.count)
            for item in items { key(item) }
        }
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
