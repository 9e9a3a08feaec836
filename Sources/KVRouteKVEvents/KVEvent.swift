/// One event of a vLLM KV event batch.
public enum KVEvent: Hashable, Sendable {
    case blockStored(BlockStored)
    case blockRemoved(BlockRemoved)
    case allBlocksCleared

    /// The event's tag on the wire (`type` in the map form, the first item in the positional one).
    public var typeName: String {
        switch self {
        case .blockStored: "BlockStored"
        case .blockRemoved: "BlockRemoved"
        case .allBlocksCleared: "AllBlocksCleared"
        }
    }
}

/// Blocks that became cached: one chain of full blocks, each hashed from its parent.
public struct BlockStored: Hashable, Sendable {
    /// One hash per block, in chain order.
    public var blockHashes: [ExternalBlockHash]
    /// The hash of the block before the first one, `nil` for a chain from the root.
    public var parentBlockHash: ExternalBlockHash?
    /// Every block's tokens, flat (`blockHashes.count × blockSize` of them).
    public var tokenIDs: [UInt32]
    public var blockSize: Int
    /// Deprecated by vLLM in favour of `loraName`; still sent.
    public var loraID: Int?
    /// Where the blocks live: "GPU" (even on the CPU build), "CPU" for offloaded tiers.
    public var medium: String?
    public var loraName: String?
    /// One entry per block: the extra keys that went into that block's hash (LoRA name,
    /// multimodal ids, cache salt), `nil` for a block without any.
    public var extraKeys: [[MessagePackValue]?]?
    /// The KV cache group (hybrid models have several).
    public var groupIdx: Int?
    /// "full_attention", "sliding_window", …
    public var kvCacheSpecKind: String?
    public var kvCacheSpecSlidingWindow: Int?

    public init(
        blockHashes: [ExternalBlockHash], parentBlockHash: ExternalBlockHash?, tokenIDs: [UInt32], blockSize: Int,
        loraID: Int? = nil, medium: String? = "GPU", loraName: String? = nil, extraKeys: [[MessagePackValue]?]? = nil,
        groupIdx: Int? = nil, kvCacheSpecKind: String? = nil, kvCacheSpecSlidingWindow: Int? = nil
    ) {
        self.blockHashes = blockHashes
        self.parentBlockHash = parentBlockHash
        self.tokenIDs = tokenIDs
        self.blockSize = blockSize
        self.loraID = loraID
        self.medium = medium
        self.loraName = loraName
        self.extraKeys = extraKeys
        self.groupIdx = groupIdx
        self.kvCacheSpecKind = kvCacheSpecKind
        self.kvCacheSpecSlidingWindow = kvCacheSpecSlidingWindow
    }

    /// The tokens of block `i` (empty when the event is short of tokens).
    public func tokens(ofBlock i: Int) -> ArraySlice<UInt32> {
        let start = i * blockSize, end = start + blockSize
        guard i >= 0, blockSize > 0, end <= tokenIDs.count else { return [] }
        return tokenIDs[start..<end]
    }
}

/// Blocks that were evicted (their hashes no longer hit).
public struct BlockRemoved: Hashable, Sendable {
    public var blockHashes: [ExternalBlockHash]
    public var medium: String?
    public var groupIdx: Int?

    public init(blockHashes: [ExternalBlockHash], medium: String? = "GPU", groupIdx: Int? = nil) {
        self.blockHashes = blockHashes
        self.medium = medium
        self.groupIdx = groupIdx
    }
}
