/// How the picker hashes prompts into KV block hashes; precise routing works only when every
/// engine hashes the same way (vLLM's `--block-size`, `--prefix-caching-hash-algo` and
/// `PYTHONHASHSEED`).
public struct HashingSettings: Sendable, Hashable {
    public var blockSize: Int
    /// vLLM's name: `sha256_cbor` is the one reproducible outside Python that kvroute implements.
    public var hashAlgorithm: String
    /// PYTHONHASHSEED; no metric shows an engine's, so a difference shows only in the hashes
    /// (``HashAgreement``).
    public var hashSeed: String

    public init(blockSize: Int, hashAlgorithm: String = "sha256_cbor", hashSeed: String = "0") {
        self.blockSize = blockSize
        self.hashAlgorithm = hashAlgorithm
        self.hashSeed = hashSeed
    }

    /// One way an engine's cache configuration differs from the picker's.
    public struct Mismatch: Sendable, Hashable, CustomStringConvertible {
        /// Bounded: the metric label.
        public enum Field: String, Sendable, CaseIterable {
            case blockSize = "block_size"
            case hashAlgorithm = "hash_algo"
            case prefixCaching = "prefix_caching"
            case hashes
        }

        public var field: Field
        public var engine: String
        public var message: String
        public var description: String { message }
    }

    /// What an engine's `vllm:cache_config_info` labels say against these settings. A label the
    /// engine does not export is not a mismatch (older vLLM lacks `prefix_caching_hash_algo`).
    public func mismatches(cacheConfigLabels labels: [String: String], engine: String) -> [Mismatch] {
        var out: [Mismatch] = []
        if let b = labels["block_size"], Int(b) != blockSize {
            out.append(Mismatch(field: .blockSize, engine: engine,
                message: "engine \(engine) uses block size \(b), the picker \(blockSize): its KV events' hashes never match the picker's (set the picker's block size to the engines')"))
        }
        if let algo = labels["prefix_caching_hash_algo"], algo != hashAlgorithm {
            out.append(Mismatch(field: .hashAlgorithm, engine: engine,
                message: "engine \(engine) hashes blocks with \(algo), the picker with \(hashAlgorithm): start vLLM with --prefix-caching-hash-algo \(hashAlgorithm) (and PYTHONHASHSEED=\(hashSeed))"))
        }
        if let on = labels["enable_prefix_caching"], on.lowercased() == "false" {
            out.append(Mismatch(field: .prefixCaching, engine: engine,
                message: "engine \(engine) has prefix caching off: it publishes no blocks to route by (start vLLM with --enable-prefix-caching)"))
        }
        return out
    }
}

/// Whether an engine's KV events carry the hashes the picker computes for the requests it
/// routes there: a different hash seed (PYTHONHASHSEED), block size or algorithm makes every
/// hash differ, so the engine's events never contain a routed request's first block. A value
/// type: the store feeds it routed prefixes and stored hashes.
public struct HashAgreement: Sendable, Hashable {
    /// Routed first-block hashes not yet seen stored, oldest first (bounded).
    private var pending: [UInt64] = []
    /// Routed requests with at least one full block.
    public private(set) var routed = 0
    /// Of those, how many first blocks the engine reported holding.
    public private(set) var confirmed = 0
    /// Blocks the engine stored since the first routed request.
    public private(set) var storedSinceRouted = 0

    static let pendingLimit = 256
    /// Evidence needed before calling it a mismatch.
    public static let minimumRouted = 8
    public static let minimumStored = 16

    public init() {}

    public enum Verdict: Sendable, Hashable {
        case unknown, agrees, disagrees
    }

    /// The picker routed a request whose first block hash is `hash`; `held` when the index
    /// already holds it for this engine.
    public mutating func routed(firstBlock hash: UInt64, held: Bool) {
        routed += 1
        if held {
            confirmed += 1
            return
        }
        if pending.count >= Self.pendingLimit { pending.removeFirst() }
        pending.append(hash)
    }

    /// The engine reported storing `hash`.
    public mutating func stored(_ hash: UInt64) {
        guard routed > 0 else { return }
        storedSinceRouted += 1
        if let i = pending.firstIndex(of: hash) {
            pending.remove(at: i)
            confirmed += 1
        }
    }

    /// No routed first block ever appeared although the engine stored blocks: its hashes
    /// are not the picker's.
    public var verdict: Verdict {
        if confirmed > 0 { return .agrees }
        if routed >= Self.minimumRouted && storedSinceRouted >= Self.minimumStored { return .disagrees }
        return .unknown
    }
}
