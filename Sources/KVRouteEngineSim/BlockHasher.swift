import KVRouteKVEvents

/// The engine hashes blocks exactly as its KV events name them: vLLM's `sha256_cbor` from
/// ``VLLMBlockHasher``, extra keys (LoRA name, cache salt) included.
public typealias BlockHasher = VLLMBlockHasher
/// A block's full 32-byte hash; chained into the next block's hash.
public typealias BlockDigest = BlockHashDigest

extension VLLMBlockHasher {
    /// A hasher whose NONE_HASH comes from `PYTHONHASHSEED` (`hashSeed`), or is drawn at
    /// random when there is none — as vLLM does, which is why unseeded replicas never agree.
    public init(blockSize: Int, hashSeed: String?) {
        if let hashSeed {
            self.init(blockSize: blockSize, hashSeed: hashSeed)
        } else {
            var rng = SystemRandomNumberGenerator()
            let bytes = (0..<4).flatMap { _ in withUnsafeBytes(of: rng.next() as UInt64) { Array($0) } }
            self.init(blockSize: blockSize, noneHash: BlockHashDigest(bytes: bytes))
        }
    }

    /// Hash of one full block without extra keys.
    public func hash(parent: BlockHashDigest?, tokens: ArraySlice<UInt32>) -> BlockHashDigest {
        hash(parent: parent, tokens: tokens, extraKeys: nil)
    }

    /// Hashes of every full block of `tokens`, continuing a chain that already covers
    /// `existing.count` blocks. The LoRA name keys every block, the cache salt the first.
    public func extend(_ existing: inout [BlockHashDigest], tokens: [UInt32], loraName: String? = nil, cacheSalt: String? = nil) {
        guard blockSize > 0 else { return }
        let full = tokens.count / blockSize
        var i = existing.count
        while i < full {
            let keys = Self.extraKeys(blockIndex: i, loraName: loraName, cacheSalt: cacheSalt)
            existing.append(hash(parent: existing.last, tokens: tokens[(i * blockSize)..<((i + 1) * blockSize)], extraKeys: keys))
            i += 1
        }
    }
}
