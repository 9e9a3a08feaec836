import Prometheus

/// vLLM's Prometheus metrics for one engine, with vLLM's names, labels (`model_name`,
/// `engine`), units (seconds, tokens) and histogram buckets. Each engine owns its registry,
/// so many engines can live in one process. The engine hands them over once per step, after
/// the step (``publish(_:running:waiting:kvUsage:)``), as vLLM's scheduler stats travel with
/// the step's outputs.
public final class EngineMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let running: Gauge
    let waiting: Gauge
    let kvUsage: Gauge
    let kvUsageDeprecated: Gauge?
    let prefixQueries: Counter
    let prefixHits: Counter
    let promptTokens: Counter
    let generationTokens: Counter
    let preemptions: Counter
    let successLength: Counter
    let successStop: Counter
    let successAbort: Counter
    let ttft: ValueHistogram
    let itl: ValueHistogram
    let e2e: ValueHistogram
    let queueTime: ValueHistogram
    let prefillTime: ValueHistogram
    let decodeTime: ValueHistogram
    let promptTokensHistogram: ValueHistogram
    let generationTokensHistogram: ValueHistogram

    static let ttftBuckets: [Double] = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0]
    static let itlBuckets: [Double] = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0]
    static let requestBuckets: [Double] = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0]
    static let tokenBuckets: [Double] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000]

    public init(configuration: EngineConfiguration, engineIndex: Int = 0) {
        let r = PrometheusCollectorRegistry()
        registry = r
        let labels = [("model_name", configuration.model), ("engine", String(engineIndex))]
        running = r.makeGauge(name: "vllm:num_requests_running", labels: labels, help: "Number of requests in model execution batches.")
        waiting = r.makeGauge(name: "vllm:num_requests_waiting", labels: labels, help: "Number of requests waiting to be processed.")
        kvUsage = r.makeGauge(name: "vllm:kv_cache_usage_perc", labels: labels, help: "KV-cache usage. 1 means 100 percent usage.")
        kvUsageDeprecated = configuration.exportGPUCacheUsagePerc
            ? r.makeGauge(name: "vllm:gpu_cache_usage_perc", labels: labels, help: "GPU KV-cache usage. 1 means 100 percent usage.")
            : nil
        prefixQueries = r.makeCounter(name: "vllm:prefix_cache_queries_total", labels: labels, help: "Prefix cache queries, in terms of number of queried tokens.")
        prefixHits = r.makeCounter(name: "vllm:prefix_cache_hits_total", labels: labels, help: "Prefix cache hits, in terms of number of cached tokens.")
        promptTokens = r.makeCounter(name: "vllm:prompt_tokens_total", labels: labels, help: "Number of prefill tokens processed.")
        generationTokens = r.makeCounter(name: "vllm:generation_tokens_total", labels: labels, help: "Number of generation tokens processed.")
        preemptions = r.makeCounter(name: "vllm:num_preemptions_total", labels: labels, help: "Cumulative number of preemption from the engine.")
        func success(_ reason: String) -> Counter {
            r.makeCounter(name: "vllm:request_success_total", labels: labels + [("finished_reason", reason)], help: "Count of successfully processed requests.")
        }
        successLength = success("length")
        successStop = success("stop")
        successAbort = success("abort")
        func hist(_ name: String, _ buckets: [Double], _ help: String) -> ValueHistogram {
            r.makeValueHistogram(name: name, labels: labels, buckets: buckets, help: help)
        }
        ttft = hist("vllm:time_to_first_token_seconds", Self.ttftBuckets, "Histogram of time to first token in seconds.")
        itl = hist("vllm:inter_token_latency_seconds", Self.itlBuckets, "Histogram of inter-token latency in seconds.")
        e2e = hist("vllm:e2e_request_latency_seconds", Self.requestBuckets, "Histogram of e2e request latency in seconds.")
        queueTime = hist("vllm:request_queue_time_seconds", Self.requestBuckets, "Histogram of time spent in WAITING phase for request.")
        prefillTime = hist("vllm:request_prefill_time_seconds", Self.requestBuckets, "Histogram of time spent in PREFILL phase for request.")
        decodeTime = hist("vllm:request_decode_time_seconds", Self.requestBuckets, "Histogram of time spent in DECODE phase for request.")
        promptTokensHistogram = hist("vllm:request_prompt_tokens", Self.tokenBuckets, "Number of prefill tokens processed.")
        generationTokensHistogram = hist("vllm:request_generation_tokens", Self.tokenBuckets, "Number of generation tokens processed.")

        let info = r.makeGauge(
            name: "vllm:cache_config_info",
            labels: [
                ("block_size", String(configuration.blockSize)),
                ("cache_dtype", "auto"),
                ("enable_prefix_caching", configuration.enablePrefixCaching ? "True" : "False"),
                ("engine", String(engineIndex)),
                ("gpu_memory_utilization", "0.9"),
                ("num_gpu_blocks", String(configuration.numGPUBlocks)),
                ("prefix_caching_hash_algo", "sha256_cbor"),
            ],
            help: "Information of the LLMEngine CacheConfig")
        info.set(to: 1.0)
        let lora = r.makeGauge(
            name: "vllm:lora_requests_info",
            labels: [("max_lora", "0"), ("running_lora_adapters", ""), ("waiting_lora_adapters", "")],
            help: "Running stats on lora requests.")
        lora.set(to: 0.0)
    }

    /// Records what the engine did since the last call, and its state now.
    func publish(_ p: PendingMetrics, running: Int, waiting: Int, kvUsage: Double) {
        if p.prefixQueries > 0 { prefixQueries.increment(by: Int64(p.prefixQueries)) }
        if p.prefixHits > 0 { prefixHits.increment(by: Int64(p.prefixHits)) }
        if p.promptTokens > 0 { promptTokens.increment(by: Int64(p.promptTokens)) }
        if p.generationTokens > 0 { generationTokens.increment(by: Int64(p.generationTokens)) }
        if p.preemptions > 0 { preemptions.increment(by: Int64(p.preemptions)) }
        for t in p.queueTimes { queueTime.record(t) }
        for f in p.firstTokens {
            ttft.record(f.ttft)
            prefillTime.record(f.prefillTime)
        }
        for t in p.interTokens { itl.record(t) }
        for (r, decode) in p.finished {
            e2e.record(r.endToEnd)
            decodeTime.record(decode)
            promptTokensHistogram.record(Double(r.promptTokens))
            generationTokensHistogram.record(Double(r.completionTokens))
            switch r.reason {
            case .length: successLength.increment()
            case .stop: successStop.increment()
            case .abort: successAbort.increment()
            }
        }
        if p.aborts > 0 { successAbort.increment(by: Int64(p.aborts)) }
        self.running.set(Double(running))
        self.waiting.set(Double(waiting))
        self.kvUsage.set(kvUsage)
        kvUsageDeprecated?.set(kvUsage)
    }

    /// Prometheus text exposition of every metric.
    public func render() -> [UInt8] { registry.emitToBuffer() }
}

/// Metric updates an engine has made but not yet published: vLLM publishes a step's
/// scheduler stats (gauges, prefix-cache counters) and its outputs' figures after the step.
struct PendingMetrics: Sendable {
    var prefixQueries = 0
    var prefixHits = 0
    var promptTokens = 0
    var generationTokens = 0
    var preemptions = 0
    var aborts = 0
    var queueTimes: [Double] = []
    var firstTokens: [(ttft: Double, prefillTime: Double)] = []
    var interTokens: [Double] = []
    var finished: [(FinishedRequest, decodeTime: Double)] = []
}
