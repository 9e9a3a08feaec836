/// Deterministic 64-bit hashing (FNV-1a with a SplitMix finaliser): equal across processes
/// and machines, unlike Swift's randomly seeded `Hasher`.
public enum StableHash {
    public static let seed: UInt64 = 0xCBF2_9CE4_8422_2325

    @inline(__always)
    public static func fnv(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = seed) -> UInt64 {
        var h = seed
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01B3
        }
        return h
    }

    public static func hash(_ s: String, seed: UInt64 = seed) -> UInt64 {
        var s = s
        s.makeContiguousUTF8()
        return finalize(s.utf8.withContiguousStorageIfAvailable { fnv(UnsafeRawBufferPointer($0), seed: seed) } ?? seed)
    }

    @inline(__always)
    public static func finalize(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A small seeded generator for tie-breaks and random pickers.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return StableHash.finalize(state)
    }
}
