/// Everything that shapes one simulated engine: cache geometry, scheduler limits and the
/// latency model. Defaults approximate meta-llama/Llama-3.2-3B-Instruct in bf16 on one
/// H100-80GB with vLLM's defaults (see the README's "Simulator defaults" table).
public struct EngineConfiguration: Sendable, Hashable {
    /// Served model name (the `model` a request must name).
    public var model: String
    /// Tokens per KV block (vLLM `--block-size`).
    public var blockSize: Int
    /// Blocks in the KV pool (vLLM `--num-gpu-blocks-override`).
    /// 80 GB × 0.9 − 6.4 GB weights − ~2 GB activations ≈ 63.5 GB; at 112 KiB of KV per token
    /// (28 layers × 8 KV heads × 128 dims × 2 (K,V) × 2 bytes) that is ≈ 553k tokens.
    public var numGPUBlocks: Int
    /// Maximum concurrently running sequences (vLLM `--max-num-seqs`). vLLM's V1 engine
    /// defaults it by hardware and entry point: 1024 for the OpenAI server on a GPU with
    /// 70 GiB or more (an H100-80GB), with 8,192 batched tokens per step.
    public var maxNumSeqs: Int
    /// Token budget per engine step (vLLM `--max-num-batched-tokens`).
    public var maxNumBatchedTokens: Int
    /// Context window (vLLM `--max-model-len`).
    public var maxModelLen: Int
    /// Whether prompts longer than the step budget are split across steps.
    public var enableChunkedPrefill: Bool
    /// Whether the prefix cache is consulted at all (vLLM `--enable-prefix-caching`).
    public var enablePrefixCaching: Bool
    /// `PYTHONHASHSEED`: when set, block hashes are reproducible across restarts and replicas.
    public var hashSeed: String?
    /// Output length when a request names no `max_tokens`.
    public var defaultMaxTokens: Int
    /// The latency model.
    public var latency: LatencyModel
    /// Seed for jitter, output text and failure injection.
    public var seed: UInt64
    /// LoRA adapters a request may name as its `model` (vLLM `--lora-modules`); adapter i
    /// has id i + 1. The name keys every block's hash; no weights are involved.
    public var loraAdapters: [String] = []
    /// Whether the engine records KV events (``EngineCore/takeKVEvents()``).
    public var recordKVEvents = false
    /// Whether events carry each block's full 32-byte digest instead of its low 64 bits.
    public var kvEventHashBytes = false
    /// Token ids decode draws from (``OutputVocabulary/tokens(for:)`` of the serving
    /// tokenizer); empty means ``OutputVocabulary/tokens``.
    public var outputTokens: [UInt32] = []
    /// Chance that each generated token is the end-of-sequence token, ending the answer early
    /// with finish reason `stop` (drawn from the engine's random seed, the prompt and the position, so equal
    /// requests end equally). 0 = every answer runs to `max_tokens`.
    public var endOfSequenceProbability: Double = 0
    /// The end-of-sequence token (Llama-3's `<|eot_id|>`); counted in `completion_tokens`,
    /// never shown as text.
    public var endOfSequenceToken: UInt32 = 128_009
    /// When the prefix-cache counters are recorded (they differ between vLLM versions).
    public var prefixCacheCounting: PrefixCacheCounting = .perRequest
    /// Whether freed blocks that were never hashed go to the head of the free queue (vLLM
    /// 0.32) rather than its tail (older vLLM).
    public var freeUnhashedBlocksFirst = true
    /// Whether `/metrics` also exports `vllm:gpu_cache_usage_perc`, the name older vLLM
    /// used for `vllm:kv_cache_usage_perc` (vLLM 0.32 no longer exports it).
    public var exportGPUCacheUsagePerc = false

    public init(
        model: String = "meta-llama/Llama-3.2-3B-Instruct",
        blockSize: Int = 16,
        numGPUBlocks: Int = 34_560,
        maxNumSeqs: Int = 1024,
        maxNumBatchedTokens: Int = 8_192,
        maxModelLen: Int = 131_072,
        enableChunkedPrefill: Bool = true,
        enablePrefixCaching: Bool = true,
        hashSeed: String? = "0",
        defaultMaxTokens: Int = 128,
        latency: LatencyModel = LatencyModel(),
        seed: UInt64 = 0
    ) {
        self.model = model
        self.blockSize = blockSize
        self.numGPUBlocks = numGPUBlocks
        self.maxNumSeqs = maxNumSeqs
        self.maxNumBatchedTokens = maxNumBatchedTokens
        self.maxModelLen = maxModelLen
        self.enableChunkedPrefill = enableChunkedPrefill
        self.enablePrefixCaching = enablePrefixCaching
        self.hashSeed = hashSeed
        self.defaultMaxTokens = defaultMaxTokens
        self.latency = latency
        self.seed = seed
    }

    /// The adapter a request's `model` names, if it names one.
    public func loraAdapter(named name: String) -> LoRAAdapter? {
        loraAdapters.firstIndex(of: name).map { LoRAAdapter(name: name, id: $0 + 1) }
    }

    /// Checks the values a user can get wrong on the command line.
    public func validate() throws(EngineError) {
        func bad(_ message: String) -> EngineError { EngineError(code: .invalidConfiguration, message: message) }
        guard blockSize > 0 else { throw bad("block size must be positive, got \(blockSize)") }
        guard numGPUBlocks > 1 else { throw bad("num-gpu-blocks must be at least 2 (one is vLLM's reserved null block), got \(numGPUBlocks)") }
        guard maxNumSeqs > 0 else { throw bad("max-num-seqs must be positive, got \(maxNumSeqs)") }
        guard maxNumBatchedTokens > 0 else { throw bad("max-num-batched-tokens must be positive, got \(maxNumBatchedTokens)") }
        guard maxModelLen > 1 else { throw bad("max-model-len must be above 1, got \(maxModelLen)") }
        guard enableChunkedPrefill || maxNumBatchedTokens >= maxModelLen else {
            throw bad("without chunked prefill, max-num-batched-tokens (\(maxNumBatchedTokens)) must be at least max-model-len (\(maxModelLen))")
        }
        guard (0...1).contains(endOfSequenceProbability) else {
            throw bad("end-of-sequence probability must be in [0, 1], got \(endOfSequenceProbability)")
        }
        guard defaultMaxTokens > 0 else { throw bad("default max tokens must be positive") }
        for (i, name) in loraAdapters.enumerated() {
            guard !name.isEmpty, name != model else { throw bad("a LoRA adapter needs a name other than the served model's, got \"\(name)\"") }
            guard !loraAdapters[..<i].contains(name) else { throw bad("LoRA adapter \"\(name)\" is named twice") }
        }
        try latency.validate()
    }
}

/// When vLLM records `vllm:prefix_cache_queries_total` and `vllm:prefix_cache_hits_total`.
public enum PrefixCacheCounting: String, Sendable, Hashable, CaseIterable {
    /// Once per request, when it is admitted (vLLM 0.32): a request that waits for blocks or
    /// is preempted and readmitted is not counted again, so the counters' deltas equal the
    /// `usage` figures.
    case perRequest = "per-request"
    /// At every prefix lookup (older vLLM): a request looked up again while it waits for
    /// blocks, or readmitted after preemption, adds its tokens again.
    case everyLookup = "every-lookup"
}
