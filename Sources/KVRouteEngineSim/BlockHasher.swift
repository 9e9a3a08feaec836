import Crypto

/// A block's full 32-byte hash; chained into the next block's hash.
public struct BlockDigest: Hashable, Sendable {
    public var bytes: (UInt64, UInt64, UInt64, UInt64)

    public static func == (a: BlockDigest, b: BlockDigest) -> Bool { a.bytes == b.bytes }
    public func hash(into h: inout Hasher) { h.combine(bytes.3) }

    /// The 64-bit id vLLM puts in KV events: the last 8 digest bytes, big-endian.
    public var low64: UInt64 { bytes.3 }
}

/// vLLM's `sha256_cbor` prefix-cache hash: block i's hash is SHA-256 over the canonical CBOR
/// encoding of `[parent_hash, token_ids, extra_keys]`, where the first block's parent is
/// NONE_HASH. NONE_HASH is SHA-256 of CBOR(str(PYTHONHASHSEED)) when the seed is set, random
/// per process otherwise — which is why unseeded replicas never agree on hashes.
public struct BlockHasher: Sendable {
    public let noneHash: BlockDigest
    public let blockSize: Int

    public init(blockSize: Int, hashSeed: String?) {
        self.blockSize = blockSize
        if let seed = hashSeed {
            var cbor = CBORWriter()
            cbor.text(seed)
            noneHash = Self.digest(cbor.bytes)
        } else {
            var rng = SystemRandomNumberGenerator()
            noneHash = BlockDigest(bytes: (rng.next(), rng.next(), rng.next(), rng.next()))
        }
    }

    /// Hash of one full block given its parent.
    public func hash(parent: BlockDigest?, tokens: ArraySlice<UInt32>) -> BlockDigest {
        var cbor = CBORWriter()
        cbor.arrayHeader(3)
        let p = parent ?? noneHash
        cbor.byteString(of: p)
        cbor.arrayHeader(tokens.count)
        for t in tokens { cbor.unsigned(UInt64(t)) }
        cbor.null()
        return Self.digest(cbor.bytes)
    }

    /// Hashes of every full block of `tokens`, continuing a chain that already covers
    /// `existing.count` blocks.
    public func extend(_ existing: inout [BlockDigest], tokens: [UInt32]) {
        let full = tokens.count / blockSize
        var i = existing.count
        while i < full {
            let h = hash(parent: existing.last, tokens: tokens[(i * blockSize)..<((i + 1) * blockSize)])
            existing.append(h)
            i += 1
        }
    }

    static func digest(_ bytes: [UInt8]) -> BlockDigest {
        let d = SHA256.hash(data: bytes)
        var words: [UInt64] = [0, 0, 0, 0]
        var i = 0
        for b in d {
            words[i / 8] = (words[i / 8] << 8) | UInt64(b)
            i += 1
        }
        return BlockDigest(bytes: (words[0], words[1], words[2], words[3]))
    }
}

/// The few canonical-CBOR items the block hash needs (RFC 8949 §4.2: shortest lengths).
struct CBORWriter {
    var bytes: [UInt8] = []

    init() { bytes.reserveCapacity(128) }

    mutating func head(_ major: UInt8, _ value: UInt64) {
        let m = major << 5
        switch value {
        case 0..<24: bytes.append(m | UInt8(value))
        case 24..<0x100: bytes.append(m | 24); bytes.append(UInt8(value))
        case 0x100..<0x1_0000:
            bytes.append(m | 25)
            bytes.append(UInt8(value >> 8)); bytes.append(UInt8(value & 0xFF))
        case 0x1_0000..<0x1_0000_0000:
            bytes.append(m | 26)
            for s in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8((value >> UInt64(s)) & 0xFF)) }
        default:
            bytes.append(m | 27)
            for s in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8((value >> UInt64(s)) & 0xFF)) }
        }
    }

    mutating func unsigned(_ v: UInt64) { head(0, v) }
    mutating func arrayHeader(_ n: Int) { head(4, UInt64(n)) }
    mutating func null() { bytes.append(0xF6) }
    mutating func text(_ s: String) {
        head(3, UInt64(s.utf8.count))
        bytes.append(contentsOf: s.utf8)
    }
    mutating func byteString(of d: BlockDigest) {
        head(2, 32)
        for w in [d.bytes.0, d.bytes.1, d.bytes.2, d.bytes.3] {
            for s in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8((w >> UInt64(s)) & 0xFF)) }
        }
    }
}
