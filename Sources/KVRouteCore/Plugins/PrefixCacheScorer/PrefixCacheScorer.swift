/// `prefix-cache-scorer`: the share of a prompt's leading blocks an endpoint probably holds,
/// estimated without engine help (Gateway API Inference Extension semantics). The prompt's
/// text is cut into blocks of `blockSize` tokens × 4 characters, hashed as a chain seeded
/// with the model name; the ledger's ``PrefixIndexState`` keeps per endpoint a bounded set
/// of the blocks routed there (CLOCK eviction, see ``BlockTable``). Score = matched leading blocks / blocks considered. The index learns
/// from every admission, and moves blocks when another endpoint serves.
///
/// Parameters: `blockSize` (tokens per block, 16), `hashBlockSize` (characters per block;
/// overrides blockSize × 4), `maxPrefixBlocksToMatch` (256), `lruCapacityPerServer` (31,250).
public struct PrefixCacheScorer: EndpointScorer {
    public let type = "prefix-cache-scorer"
    public let name: String
    public let blockBytes: Int
    public let maxBlocks: Int
    public let lruCapacityPerServer: Int

    /// The scorer's index in the ledger (one per scorer name).
    public let key: LedgerKey<PrefixIndexState>
    /// The request's block hashes (shared by prefix scorers cutting blocks alike) and this
    /// scorer's matches, noted for the index to learn from.
    let notes: PrefixIndexState.Notes

    public init(name: String, blockBytes: Int = 64, maxBlocks: Int = 256, lruCapacityPerServer: Int = 31_250) {
        self.name = name
        self.blockBytes = blockBytes
        self.maxBlocks = maxBlocks
        self.lruCapacityPerServer = lruCapacityPerServer
        key = LedgerKey("prefix-cache-scorer/\(name)")
        notes = .init(hashes: NoteKey("prefix-hashes/\(blockBytes)/\(maxBlocks)"), matched: NoteKey("prefix-matched/\(name)"))
    }

    static func make(name: String, parameters p: inout PluginParameters) throws -> PrefixCacheScorer {
        let tokens = try p.int("blockSize", default: 16, min: 1)
        let chars = try p.int("hashBlockSize", default: tokens * 4, min: 1)
        let maxBlocks = try p.int("maxPrefixBlocksToMatch", default: 256, min: 1)
        let capacity = try p.int("lruCapacityPerServer", default: 31_250, min: 1)
        if let mode = try p.string("mode", default: nil), mode != "estimate" {
            throw p.bad("mode", "\"\(mode)\" is not supported (kvroute estimates the cache from routing; use \"estimate\")")
        }
        return PrefixCacheScorer(name: name, blockBytes: chars, maxBlocks: maxBlocks, lruCapacityPerServer: capacity)
    }

    public var ledgerStates: [LedgerStateSpec] {
        let (capacity, notes) = (lruCapacityPerServer, self.notes)
        return [LedgerStateSpec(key) { PrefixIndexState(capacityPerEndpoint: capacity, notes: notes) }]
    }

    public func score(_ candidates: [EndpointSnapshot], context: inout SchedulingContext, ledger: RoutingLedger) -> [Double] {
        let hashes = blockHashes(context: &context)
        context.totalPrefixBlocks = hashes.count
        guard !hashes.isEmpty else { return candidates.map { _ in 0 } }
        let depths = ledger[key]?.index.match(hashes, candidates: candidates) ?? []
        // Only the endpoints holding something are noted: usually none or a few.
        var matched: [EndpointAddress: Int] = [:]
        for (i, d) in depths.enumerated() where d > 0 { matched[candidates[i].address] = d }
        context.matchedPrefixBlocks = matched
        context[note: notes.matched] = matched
        let total = Double(hashes.count)
        return depths.isEmpty ? candidates.map { _ in 0 } : depths.map { Double($0) / total }
    }

    /// The chain of block hashes of the request's prompt text, computed once per request.
    /// The text is streamed through a block buffer without being assembled, and hashing
    /// stops at `maxBlocks`, so a 128k-token prompt costs no more than its first blocks.
    func blockHashes(context: inout SchedulingContext) -> [UInt64] {
        if let h = context[note: notes.hashes] { return h }
        var chunker = BlockChunker(
            blockBytes: blockBytes, maxBlocks: maxBlocks, seed: StableHash.hash(context.request.model),
            expectedBytes: PromptText.byteCount(context.request.prompt))
        PromptText.stream(context.request.prompt) { chunker.feed($0) }
        context[note: notes.hashes] = chunker.hashes
        return chunker.hashes
    }
}

/// A prefix scorer's index in the ledger: which endpoint probably holds which prompt
/// blocks. An admission inserts the request's blocks on its endpoint; a move takes the
/// blocks the admission added (past the leading run the first endpoint already held) away
/// from it and gives the whole prompt to the endpoint that served; a departed endpoint is
/// forgotten.
public struct PrefixIndexState: LedgerState {
    struct Notes: Sendable {
        var hashes: NoteKey<[UInt64]>
        var matched: NoteKey<[EndpointAddress: Int]>
    }
    var index: PrefixIndex
    let notes: Notes
    public private(set) var lookedUp = 0
    public private(set) var matched = 0

    init(capacityPerEndpoint: Int, notes: Notes) {
        index = PrefixIndex(capacityPerEndpoint: capacityPerEndpoint)
        self.notes = notes
    }

    /// Block hashes held, over every endpoint.
    public var size: Int { index.size }
    /// Matched / looked-up blocks of the requests admitted so far.
    public var hitRatio: Double { lookedUp == 0 ? 0 : Double(matched) / Double(lookedUp) }

    public mutating func learn(_ event: LedgerEvent) {
        switch event {
        case .admitted(let r):
            guard let hashes = r.context[note: notes.hashes], let m = r.context[note: notes.matched] else { return }
            lookedUp += hashes.count
            matched += m.values.max() ?? 0
            index.insert(hashes, endpoint: r.endpoint)
        case .moved(let r, let from):
            guard let hashes = r.context[note: notes.hashes] else { return }
            let held = min(hashes.count, r.context[note: notes.matched]?[from] ?? 0)
            index.remove(hashes[held...], endpoint: from)
            index.insert(hashes, endpoint: r.endpoint)
        case .finished: break
        case .endpointLeft(let e): index.forget(e)
        }
    }
}

/// Cuts a byte stream into fixed-size blocks and chains their hashes (``StableHash/block(_:seed:)``,
/// 8 bytes at a time). Whole blocks are hashed where they lie in the fed pieces; only a block
/// that straddles two pieces is copied into a small buffer first. A partial last block is
/// not hashed.
struct BlockChunker {
    let blockBytes: Int
    let maxBlocks: Int
    var parent: UInt64
    private var pending: [UInt8] = []
    var hashes: [UInt64] = []

    init(blockBytes: Int, maxBlocks: Int, seed: UInt64, expectedBytes: Int = 0) {
        self.blockBytes = blockBytes
        self.maxBlocks = maxBlocks
        self.parent = seed
        hashes.reserveCapacity(min(maxBlocks, expectedBytes / blockBytes))
    }

    var done: Bool { hashes.count >= maxBlocks }

    private mutating func emit(_ block: UnsafeRawBufferPointer) {
        parent = StableHash.block(block, seed: parent)
        hashes.append(parent)
    }

    /// Feeds bytes; returns false once enough blocks are hashed.
    @discardableResult
    mutating func feed(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if done { return false }
        let n = bytes.count
        var i = 0
        if !pending.isEmpty {
            i = min(blockBytes - pending.count, n)
            pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[0..<i]))
            guard pending.count == blockBytes else { return true }
            pending.withUnsafeBytes { emit($0) }
            pending.removeAll(keepingCapacity: true)
        }
        while !done && n - i >= blockBytes {
            emit(UnsafeRawBufferPointer(rebasing: bytes[i..<(i + blockBytes)]))
            i += blockBytes
        }
        if done { return false }
        if i < n {
            if pending.capacity < blockBytes { pending.reserveCapacity(blockBytes) }
            pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[i..<n]))
        }
        return true
    }
}

/// The text prefix matching runs over: completions' prompt, or chat messages rendered as
/// `role\ncontent\n` in order, so shared system prompts and growing histories share a prefix.
public enum PromptText {
    /// Passes the rendered text's bytes in pieces, without assembling it; stops when `sink`
    /// returns false.
    public static func stream(_ prompt: PromptContent, _ sink: (UnsafeRawBufferPointer) -> Bool) {
        func emit(_ s: String) -> Bool {
            var s = s
            s.makeContiguousUTF8()
            return s.utf8.withContiguousStorageIfAvailable { sink(UnsafeRawBufferPointer($0)) } ?? true
        }
        switch prompt {
        case .text(let s): _ = emit(s)
        case .none: break
        case .messages(let msgs):
            for m in msgs {
                guard emit(m.role), emit("\n"), emit(m.content), emit("\n") else { return }
            }
        }
    }

    /// The rendered text's length in bytes (without rendering it).
    public static func byteCount(_ prompt: PromptContent) -> Int {
        switch prompt {
        case .text(let s): return s.utf8.count
        case .none: return 0
        case .messages(let msgs): return msgs.reduce(0) { $0 + $1.role.utf8.count + $1.content.utf8.count + 2 }
        }
    }

    public static func render(_ prompt: PromptContent) -> String {
        switch prompt {
        case .text(let s): return s
        case .none: return ""
        case .messages(let msgs):
            var out = ""
            out.reserveCapacity(msgs.reduce(0) { $0 + $1.content.utf8.count + $1.role.utf8.count + 2 })
            for m in msgs {
                out += m.role
                out += "\n"
                out += m.content
                out += "\n"
            }
            return out
        }
    }
}
