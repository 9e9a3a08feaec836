import ArgumentParser
import Foundation
import KVRouteEngineSim
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
    @Option(help: "Maximum running sequences per engine.") var maxNumSeqs = 256
    @Option(help: "Token budget of one engine step.") var maxNumBatchedTokens = 8_192
    @Option(help: "Context window in tokens.") var maxModelLen = 131_072
    @Flag(help: "Disable chunked prefill (then max-num-batched-tokens must cover max-model-len).") var noChunkedPrefill = false
    @Flag(help: "Disable prefix caching.") var noPrefixCaching = false
    @Option(help: "PYTHONHASHSEED for block hashes (default: the PYTHONHASHSEED variable; unset = random per process, as vLLM).")
    var hashSeed: String?
    @Option(help: "Output tokens when a request gives no max_tokens.") var defaultMaxTokens = 128
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

    func engineConfiguration() -> EngineConfiguration {
        EngineConfiguration(
            model: model, blockSize: blockSize, numGPUBlocks: numGpuBlocks, maxNumSeqs: maxNumSeqs,
            maxNumBatchedTokens: maxNumBatchedTokens, maxModelLen: maxModelLen,
            enableChunkedPrefill: !noChunkedPrefill, enablePrefixCaching: !noPrefixCaching,
            hashSeed: hashSeed ?? ProcessInfo.processInfo.environment["PYTHONHASHSEED"],
            defaultMaxTokens: defaultMaxTokens,
            latency: LatencyModel(
                stepOverhead: stepOverheadMs / 1000, prefillPerToken: prefillUsPerToken / 1_000_000,
                decodeBase: decodeBaseMs / 1000, decodePerSequence: decodeUsPerSequence / 1_000_000, jitter: jitter),
            seed: seed)
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
                engines: engines, host: host, basePort: port, engine: engineConfiguration(), timeScale: timeScale,
                server: .init(podName: podNamePrefix, maxBodyBytes: maxBodyBytes, faults: faults),
                podNamePrefix: podNamePrefix, logger: logger)
        } catch {
            throw ValidationError(error.message)
        }
        try await CommandFailure.reporting("sim") {
            let servers = ServerGroup(cluster.services, logger: logger)
            guard let bound = try await servers.untilListening({ await cluster.waitUntilListening() }) else { return }
            logger.info("engines listening", metadata: [
                "urls": "\(bound.map { "http://\(host):\($0)" }.joined(separator: ","))",
                "model": "\(model)", "num_gpu_blocks": "\(numGpuBlocks)", "block_size": "\(blockSize)",
            ])
            try await servers.wait()
        }
    }
}

extension FaultSettings.GarbageMetrics: ExpressibleByArgument {}
