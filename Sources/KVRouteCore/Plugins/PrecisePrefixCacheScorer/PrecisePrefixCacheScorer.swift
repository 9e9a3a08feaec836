/// `precise-prefix-cache-scorer`: the share of a prompt's leading KV blocks an endpoint
/// reported holding, from the engines' own KV events (llm-d's precise scorer). The core
/// neither tokenizes nor hashes: a ``PreciseBlockLookup`` installed in the ledger by the
/// adapter (kvroute's `KVRoutePrecise` index, fed by every engine's ZMQ stream) hashes the
/// prompt as the engines do — their tokenizer and chat template, `blockSize`, `hashSeed`,
/// sha256_cbor — and says how many leading blocks each endpoint holds.
/// Score = held leading blocks / blocks considered; 0 for all while no lookup is installed.
///
/// Parameters: `blockSize` (16), `hashSeed` ("0"), `maxPrefixBlocksToMatch` (256), and llm-d's
/// nested names `indexerConfig.tokenProcessorConfig.blockSize` / `.hashSeed`,
/// `kvEventsConfig.zmqEndpoint` / `.topicFilter` (read for the adapter that subscribes);
/// llm-d's other `indexerConfig` and `kvEventsConfig` keys (index sizes, tokenizer pools,
/// worker counts) are accepted and ignored: kvroute's index has its own memory budget.
public struct PrecisePrefixCacheScorer: EndpointScorer {
    public let type = "precise-prefix-cache-scorer"
    public let name: String
    public let blockSize: Int
    public let hashSeed: String
    public let maxBlocks: Int
    /// Where engines publish KV events, when the configuration names it (llm-d's
    /// `kvEventsConfig.zmqEndpoint`); the adapter subscribes, the scorer never does.
    public let zmqEndpoint: String?
    public let topicFilter: String?

    /// The one lookup every precise scorer of a Scheduler reads.
    public static let sourceKey = LedgerKey<PreciseBlockSource>("precise-prefix-cache-scorer/source")
    /// The prompt's block hashes as this decision computed them: the source tells the lookup
    /// where the request was admitted (``PreciseBlockLookup/routed(blockHashes:to:)``).
    public static let routedHashes = NoteKey<[UInt64]>("precise-prefix-cache-scorer/hashes")

    public init(name: String, blockSize: Int = 16, hashSeed: String = "0", maxBlocks: Int = 256,
                zmqEndpoint: String? = nil, topicFilter: String? = nil) {
        self.name = name
        self.blockSize = blockSize
        self.hashSeed = hashSeed
        self.maxBlocks = maxBlocks
        self.zmqEndpoint = zmqEndpoint
        self.topicFilter = topicFilter
    }

    static func make(name: String, parameters p: inout PluginParameters) throws -> PrecisePrefixCacheScorer {
        var blockSize = try p.int("blockSize", default: 16, min: 1, max: 1 << 16)
        var hashSeed = try p.string("hashSeed", default: "0") ?? "0"
        let maxBlocks = try p.int("maxPrefixBlocksToMatch", default: 256, min: 1)
        var zmq: String?, topic: String?
        if let indexer = try p.nested("indexerConfig") {
            if case .map(let tp)? = indexer["tokenProcessorConfig"] {
                if let v = tp["blockSize"] {
                    guard case .number(let n) = v, let b = Int(exactly: n), (1...(1 << 16)).contains(b) else {
                        throw p.bad("indexerConfig.tokenProcessorConfig.blockSize", "must be an integer in 1...65536, got \(v)")
                    }
                    blockSize = b
                }
                if let v = tp["hashSeed"] {
                    switch v {
                    case .string(let s): hashSeed = s
                    case .number: hashSeed = v.description
                    default: throw p.bad("indexerConfig.tokenProcessorConfig.hashSeed", "must be a string, got \(v)")
                    }
                }
            }
        }
        if let events = try p.nested("kvEventsConfig") {
            if case .string(let s)? = events["zmqEndpoint"] { zmq = s }
            if case .string(let s)? = events["topicFilter"] { topic = s }
        }
        return PrecisePrefixCacheScorer(name: name, blockSize: blockSize, hashSeed: hashSeed, maxBlocks: maxBlocks,
                                        zmqEndpoint: zmq, topicFilter: topic)
    }

    public var ledgerStates: [LedgerStateSpec] {
        [LedgerStateSpec(Self.sourceKey) { PreciseBlockSource() }]
    }

    public func score(_ candidates: [EndpointSnapshot], context: inout SchedulingContext, ledger: RoutingLedger) -> [Double] {
        guard let lookup = ledger[Self.sourceKey]?.lookup else { return candidates.map { _ in 0 } }
        let match = lookup.match(context.request, blockSize: blockSize, hashSeed: hashSeed, maxBlocks: maxBlocks)
        context.totalPrefixBlocks = match.total
        if !match.blockHashes.isEmpty { context[note: Self.routedHashes] = match.blockHashes }
        guard match.total > 0 else { return candidates.map { _ in 0 } }
        var matched: [EndpointAddress: Int] = [:]
        for c in candidates { if let n = match.held[c.address], n > 0 { matched[c.address] = min(n, match.total) } }
        context.matchedPrefixBlocks = matched
        return candidates.map { Double(matched[$0.address] ?? 0) / Double(match.total) }
    }
}

/// Reads a precise KV block index: the request's prompt hashed as the engines hash it, and
/// each endpoint's unbroken run of held leading blocks.
public protocol PreciseBlockLookup: Sendable {
    func match(_ request: InferenceRequest, blockSize: Int, hashSeed: String, maxBlocks: Int) -> PreciseBlockMatch
    /// A request whose prompt has these block hashes was admitted on `endpoint` (called under
    /// the Scheduler's lock: keep it cheap). The index uses it to notice engines whose events
    /// never hold what is routed to them (a different hash seed).
    func routed(blockHashes: [UInt64], to endpoint: EndpointAddress)
}

extension PreciseBlockLookup {
    public func routed(blockHashes: [UInt64], to endpoint: EndpointAddress) {}
}

public struct PreciseBlockMatch: Sendable, Hashable {
    /// Blocks of the prompt considered (full blocks, at most `maxBlocks`).
    public var total: Int
    /// Leading blocks held, per endpoint.
    public var held: [EndpointAddress: Int]
    /// The prompt's block hashes (empty when the lookup does not say).
    public var blockHashes: [UInt64]

    public init(total: Int, held: [EndpointAddress: Int], blockHashes: [UInt64] = []) {
        self.total = total
        self.held = held
        self.blockHashes = blockHashes
    }
}

/// The ledger's handle on the precise index: installed by the adapter through
/// `scheduler.withLedger { $0.update(PrecisePrefixCacheScorer.sourceKey) { $0.lookup = … } }`.
/// It learns nothing from routing (the engines' events are the truth); it only tells the
/// lookup where each scored request was admitted.
public struct PreciseBlockSource: LedgerState {
    public var lookup: (any PreciseBlockLookup)?
    public init(lookup: (any PreciseBlockLookup)? = nil) { self.lookup = lookup }
    public mutating func learn(_ event: LedgerEvent) {
        guard case .admitted(let r) = event, let lookup, let hashes = r.context[note: PrecisePrefixCacheScorer.routedHashes] else { return }
        lookup.routed(blockHashes: hashes, to: r.endpoint)
    }
}

extension PluginParameters {
    /// A map parameter (llm-d's nested configuration blocks); nil when absent.
    mutating func nested(_ key: String) throws -> [String: SendableValue]? {
        ignore(key)
        guard let v = values[key] else { return nil }
        if case .null = v { return nil }
        guard case .map(let m) = v else { throw bad(key, "must be a map") }
        return m
    }
}
