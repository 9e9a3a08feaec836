/// `prefix-cache-scorer`: the share of a prompt's leading blocks an endpoint probably holds,
/// estimated without engine help (Gateway API Inference Extension semantics). The prompt's
/// text is cut into blocks of `blockSize` tokens × 4 characters, hashed as a chain seeded
/// with the model name; the ledger's ``PrefixIndexState`` keeps per endpoint an LRU of the
/// blocks routed there. Score = matched leading blocks / blocks considered. The index learns
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

    public init(name: String, blockBytes: Int = 64, maxBlocks: Int = 256, lruCapacityPerServer: Int = 31_250) {
        self.name = name
        self.blockBytes = blockBytes
        self.maxBlocks = maxBlocks
        self.lruCapacityPerServer = lruCapacityPerServer
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

    /// The scorer's index in the ledger (one per scorer name).
    public var key: LedgerKey<PrefixIndexState> { LedgerKey("prefix-cache-scorer/\(name)") }
    public var ledgerStates: [LedgerStateSpec] {
        let (capacity, notes) = (lruCapacityPerServer, self.notes)
        return [LedgerStateSpec(key) { PrefixIndexState(capacityPerEndpoint: capacity, notes: notes) }]
    }

    /// The request's block hashes (shared by prefix scorers cutting blocks alike) and this
    /// scorer's matches, noted for the index to learn from.
    var notes: PrefixIndexState.Notes {
        .init(hashes: NoteKey("prefix-hashes/\(blockBytes)/\(maxBlocks)"), matched: NoteKey("prefix-matched/\(name)"))
    }

    public func score(_ candidates: [EndpointSnapshot], context: inout SchedulingContext, ledger: RoutingLedger) -> [Double] {
        let hashes = blockHashes(context: &context)
        context.totalPrefixBlocks = hashes.count
        guard !hashes.isEmpty else { return candidates.map { _ in 0 } }
        let matched = ledger[key]?.index.match(hashes, candidates: candidates.map(\.address)) ?? [:]
        context.matchedPrefixBlocks = matched
        context[note: notes.matched] = matched
        return candidates.map { Double(matched[$0.address] ?? 0) / Double(hashes.count) }
    }

    /// The chain of block hashes of the request's prompt text, computed once per request.
    /// The text is streamed through a block buffer without being assembled, and hashing
    /// stops at `maxBlocks`, so a 128k-token prompt costs no more than its first blocks.
    func blockHashes(context: inout SchedulingContext) -> [UInt64] {
        if let h = context[note: notes.hashes] { return h }
        var chunker = BlockChunker(blockBytes: blockBytes, maxBlocks: maxBlocks, seed: StableHash.hash(context.request.model))
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

/// Cuts a byte stream into fixed-size blocks and chains their hashes.
struct BlockChunker {
    let blockBytes: Int
    let maxBlocks: Int
    var parent: UInt64
    var current: UInt64
    var filled = 0
    var hashes: [UInt64] = []

    init(blockBytes: Int, maxBlocks: Int, seed: UInt64) {
        self.blockBytes = blockBytes
        self.maxBlocks = maxBlocks
        self.parent = seed
        self.current = seed
    }

    var done: Bool { hashes.count >= maxBlocks }

    /// Feeds bytes; returns false once enough blocks are hashed.
    @discardableResult
    mutating func feed(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        while i < bytes.count {
            if done { return false }
            let take = min(blockBytes - filled, bytes.count - i)
            current = StableHash.fnv(UnsafeRawBufferPointer(rebasing: bytes[i..<(i + take)]), seed: current)
            filled += take
            i += take
            if filled == blockBytes {
                parent = StableHash.finalize(current)
                hashes.append(parent)
                current = parent
                filled = 0
            }
        }
        return !done
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
