import DequeModule
import KVRouteKVEvents

/// One simulated vLLM engine, stepped by a driver: the real-time ``EngineRunner`` behind
/// HTTP, or a discrete-event loop in virtual time. Pure state, no clocks, no I/O: the
/// driver passes `now` in and gets each step's duration and outputs back.
///
/// Scheduling follows vLLM v1: running requests first (decodes and unfinished prefill
/// chunks), preempting the newest running request when blocks run out; then waiting
/// requests in arrival order, each looking up its prefix in the cache on admission, while
/// the step's token budget and `maxNumSeqs` allow. Blocks are hashed and registered as
/// soon as they are scheduled full, including blocks filled by decode.
///
/// Metrics are published after each step, as vLLM's scheduler stats travel with the step's
/// outputs: ``step(now:)`` publishes at its end unless ``defersMetrics`` is set, in which case
/// the driver calls ``publishMetrics()`` when the step's time has passed.
public struct EngineCore: Sendable {
    public let configuration: EngineConfiguration
    public internal(set) var pool: BlockPool
    public internal(set) var stats = EngineStats()
    public let hasher: BlockHasher
    let metrics: EngineMetrics?

    var sequences: [EngineRequestID: Sequence] = [:]
    var waiting: Deque<EngineRequestID> = []
    var running: [EngineRequestID] = []
    var nextID: EngineRequestID = 1
    var rng: SplitMix64
    /// Multiplies every step's duration (failure injection: a slow engine).
    public var slowdown: Double = 1
    /// KV events since the last ``takeKVEvents()``, in the order the cache changed.
    var kvEvents: [KVEvent] = []
    /// Full digests of registered blocks, kept only when events carry digests.
    var digestOfBlock: [Int32: BlockDigest] = [:]
    /// Metric updates made since the last ``publishMetrics()``.
    var pendingMetrics = PendingMetrics()
    /// Whether ``step(now:)`` leaves publishing its metrics to the driver (a real-time driver
    /// publishes once the step's modelled time has passed).
    public var defersMetrics = false

    public init(configuration: EngineConfiguration, metrics: EngineMetrics? = nil) throws(EngineError) {
        try configuration.validate()
        self.configuration = configuration
        self.pool = BlockPool(numBlocks: configuration.numGPUBlocks, freeUnhashedFirst: configuration.freeUnhashedBlocksFirst)
        self.hasher = BlockHasher(blockSize: configuration.blockSize, hashSeed: configuration.hashSeed)
        self.metrics = metrics
        self.rng = SplitMix64(seed: configuration.seed)
        metrics?.publish(PendingMetrics(), running: 0, waiting: 0, kvUsage: 0)
    }

    public var numRunning: Int { running.count }
    public var numWaiting: Int { waiting.count }
    public var hasWork: Bool { !running.isEmpty || !waiting.isEmpty }

    /// Admits a request to the waiting queue. Throws for requests the engine can never serve.
    public mutating func add(_ request: EngineRequest, at now: Double) throws(EngineError) -> EngineRequestID {
        let prompt = request.promptTokens.count
        guard prompt > 0 else {
            throw EngineError(code: .invalidRequest, message: "the prompt is empty")
        }
        guard request.minTokens >= 0 else {
            throw EngineError(code: .invalidRequest, message: "min_tokens must be at least 0, got \(request.minTokens)")
        }
        guard request.maxTokens > 0 else {
            throw EngineError(code: .invalidRequest, message: "max_tokens must be at least 1, got \(request.maxTokens)")
        }
        // Compared without adding: max_tokens comes from the client and may be near Int.max.
        guard request.maxTokens <= configuration.maxModelLen - prompt else {
            // Both are non-negative Ints, so their sum fits in UInt64.
            let requested = UInt64(prompt) + UInt64(request.maxTokens)
            throw EngineError(
                code: .requestTooLarge,
                message: "This model's maximum context length is \(configuration.maxModelLen) tokens. However, you requested \(requested) tokens (\(prompt) in the messages, \(request.maxTokens) in the completion). Please reduce the length of the messages or completion."
            )
        }
        let total = prompt + request.maxTokens
        let blocksNeeded = total / configuration.blockSize + (total % configuration.blockSize == 0 ? 0 : 1)
        guard blocksNeeded <= pool.usableBlocks else {
            throw EngineError(
                code: .requestTooLarge,
                message: "the request needs \(blocksNeeded) KV blocks (\(prompt) prompt + \(request.maxTokens) output tokens) but the engine has only \(pool.usableBlocks)"
            )
        }
        let id = nextID
        nextID += 1
        var seq = Sequence(id: id, request: request, arrival: now)
        if configuration.enablePrefixCaching {
            hasher.extend(&seq.digests, tokens: seq.tokens, loraName: request.lora?.name, cacheSalt: request.cacheSalt)
        }
        sequences[id] = seq
        // The waiting gauge shows it after the next step, as in vLLM.
        waiting.append(id)
        return id
    }

    /// Drops a request wherever it is (client went away); its blocks return to the pool.
    public mutating func abort(_ id: EngineRequestID) {
        guard let seq = sequences.removeValue(forKey: id) else { return }
        if let i = running.firstIndex(of: id) { running.remove(at: i) }
        if let i = waiting.firstIndex(of: id) { waiting.remove(at: i) }
        pool.free(seq.blocks)
        stats.abortedRequests += 1
        if metrics != nil { pendingMetrics.aborts += 1 }
        // vLLM runs one more step to retire an aborted request; an idle engine publishes now.
        if !hasWork { publishMetrics() }
    }

    /// Forgets all cached prefixes (vLLM's `/reset_prefix_cache`). As in vLLM, refused (false,
    /// nothing changes) while a request holds blocks, unless `resetRunningRequests` first
    /// preempts every running request back to the waiting queue (vLLM's
    /// `?reset_running_requests=true`).
    public mutating func resetPrefixCache(resetRunningRequests: Bool = false) -> Bool {
        if resetRunningRequests {
            // Newest first, each to the head of the waiting queue: they return in FIFO order.
            var n = 0
            while let id = running.popLast() {
                preempt(id)
                n += 1
            }
            if n > 0 && metrics != nil { pendingMetrics.preemptions += n }
        }
        guard pool.resetPrefixCache() else { return false }
        digestOfBlock.removeAll()
        if configuration.recordKVEvents { kvEvents.append(.allBlocksCleared) }
        return true
    }

    /// Hands the metric updates made since the last call to ``EngineMetrics``, with the
    /// running and waiting counts and KV usage as they are now.
    public mutating func publishMetrics() {
        guard let metrics else { return }
        metrics.publish(pendingMetrics, running: running.count, waiting: waiting.count, kvUsage: pool.usage)
        pendingMetrics = PendingMetrics()
    }

    /// The KV events recorded since the last call, oldest first: what vLLM publishes as one
    /// batch after a step. Empty unless ``EngineConfiguration/recordKVEvents`` is set.
    public mutating func takeKVEvents() -> [KVEvent] {
        defer { kvEvents.removeAll(keepingCapacity: true) }
        return kvEvents
    }

    /// Tokens of a request's prompt that are in the cache right now, as the engine would
    /// count them on admission (a multiple of the block size, at most prompt − 1).
    public func cachedPrefixTokens(of promptTokens: [UInt32], lora: LoRAAdapter? = nil, cacheSalt: String? = nil) -> Int {
        var digests: [BlockDigest] = []
        hasher.extend(&digests, tokens: promptTokens, loraName: lora?.name, cacheSalt: cacheSalt)
        let cap = (promptTokens.count - 1) / configuration.blockSize
        return pool.lookup(digests.prefix(cap).map(\.low64)[...]).count * configuration.blockSize
    }
}

/// A request inside the engine.
struct Sequence: Sendable {
    let id: EngineRequestID
    var tokens: [UInt32]
    let promptLength: Int
    let maxTokens: Int
    let minTokens: Int
    let ignoreEOS: Bool
    let forcedOutput: [UInt32]?
    let lora: LoRAAdapter?
    let cacheSalt: String?
    let arrival: Double
    /// Fingerprint of the prompt: seeds the deterministic answer.
    let outputSeed: UInt64
    var numComputed = 0
    var blocks: [Int32] = []
    /// Chain hashes of every full block of `tokens` known so far.
    var digests: [BlockDigest] = []
    /// Blocks of `blocks` already registered in the cache.
    var registeredBlocks = 0
    var admitted = false
    var cachedTokens = 0
    var firstScheduled: Double?
    var firstTokenTime: Double?
    var lastTokenTime: Double?
    var preemptions = 0

    init(id: EngineRequestID, request: EngineRequest, arrival: Double) {
        self.id = id
        self.tokens = request.promptTokens
        self.promptLength = request.promptTokens.count
        self.maxTokens = request.maxTokens
        self.minTokens = request.minTokens
        self.ignoreEOS = request.ignoreEOS
        self.forcedOutput = request.forcedOutput
        self.lora = request.lora
        self.cacheSalt = request.cacheSalt
        self.arrival = arrival
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for t in request.promptTokens { h = (h ^ UInt64(t)) &* 0x0000_0100_0000_01B3 }
        self.outputSeed = h
        tokens.reserveCapacity(promptLength + request.maxTokens)
    }

    var outputCount: Int { tokens.count - promptLength }
    var isDecoding: Bool { numComputed >= promptLength }
}
