import KVRouteCore
import Prometheus
import Synchronization

/// The endpoint picker's metrics under the Gateway API Inference Extension EPP's names, so
/// existing dashboards read them, plus kvroute's per-mode stream counts and decision latency.
/// Labels are bounded: body modes and outcomes are fixed sets, models are the ones engines
/// serve (anything else is `other`), endpoints are pool members.
public final class EPPMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    let schedulerDuration: ValueHistogram
    let readyPods: Gauge
    let indexerSize: Gauge
    let indexerHitRatio: Gauge
    let streams: [ExtProcStream.BodyMode: Counter]
    let decisionDuration: [ExtProcStream.BodyMode: ValueHistogram]
    let cachedTokens: Counter
    private let knownModels = Mutex<Set<String>>([])

    static let latencyBuckets: [Double] = [0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1]
    static let tokenBuckets: [Double] = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072]

    public init(poolName: String) {
        let r = registry
        schedulerDuration = r.makeValueHistogram(name: "inference_extension_scheduler_e2e_duration_seconds", labels: [], buckets: Self.latencyBuckets, help: "End-to-end scheduling latency distribution in seconds.")
        readyPods = r.makeGauge(name: "inference_pool_ready_pods", labels: [("name", poolName)], help: "The number of ready pods in the inference server pool.")
        indexerSize = r.makeGauge(name: "inference_extension_prefix_indexer_size", labels: [], help: "Size of the prefix indexer (block hashes held).")
        indexerHitRatio = r.makeGauge(name: "inference_extension_prefix_indexer_hit_ratio", labels: [], help: "Ratio of prefix blocks matched to blocks looked up.")
        var s: [ExtProcStream.BodyMode: Counter] = [:]
        var d: [ExtProcStream.BodyMode: ValueHistogram] = [:]
        for mode in ExtProcStream.BodyMode.allCases {
            s[mode] = r.makeCounter(name: "kvroute_epp_streams_total", labels: [("mode", mode.rawValue)], help: "ext_proc streams by the request body mode Envoy announced.")
            d[mode] = r.makeValueHistogram(name: "kvroute_epp_decision_duration_seconds", labels: [("mode", mode.rawValue)], buckets: Self.latencyBuckets, help: "From the message that completed the request to the routing answer being written, by request body mode.")
        }
        streams = s
        decisionDuration = d
        cachedTokens = r.makeCounter(name: "kvroute_epp_cached_prompt_tokens_total", labels: [], help: "Prompt tokens engines reported as served from their prefix cache.")
    }

    public func setKnownModels(_ models: Set<String>) { knownModels.withLock { $0 = models } }

    func modelLabel(_ m: String) -> String {
        knownModels.withLock { $0.isEmpty || $0.contains(m) } ? m : "other"
    }

    func streamOpened(mode: ExtProcStream.BodyMode) { streams[mode]?.increment() }

    func decided(_ d: RoutingDecision, mode: ExtProcStream.BodyMode, seconds: Double) {
        schedulerDuration.record(d.decisionSeconds)
        decisionDuration[mode]?.record(seconds)
        if let reason = d.fallbackReason {
            let label = reason.hasPrefix("picker-error") ? "picker-error" : reason
            registry.makeCounter(name: "kvroute_fallback_decisions_total", labels: [("reason", label)], help: "Decisions taken by the consistent-hash fallback instead of the picker.").increment()
        }
    }

    func request(model: String, endpoint: EndpointAddress?, errorCode: Int?) {
        let m = modelLabel(model)
        let labels = [("model_name", m), ("target_model_name", m)]
        registry.makeCounter(name: "inference_objective_request_total", labels: labels, help: "Counter of inference objective requests broken out for each model and target model.").increment()
        if let errorCode {
            registry.makeCounter(name: "inference_objective_request_error_total", labels: labels + [("error_code", String(errorCode))], help: "Counter of inference objective requests errors.").increment()
        }
        if let endpoint {
            registry.makeCounter(name: "kvroute_requests_routed_total", labels: [("endpoint", endpoint.description)], help: "Requests routed per endpoint.").increment()
        }
    }

    /// A response finished: its duration from the request headers and, when the body
    /// reported it, its token usage.
    func responded(model: String, seconds: Double, usage: ResponseUsage?) {
        let m = modelLabel(model)
        let labels = [("model_name", m), ("target_model_name", m)]
        registry.makeValueHistogram(name: "inference_objective_request_duration_seconds", labels: labels, buckets: [0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, 102.4, 204.8, 409.6, 819.2, 1800, 3600], help: "Inference objective response latency distribution in seconds.").record(seconds)
        guard let usage else { return }
        registry.makeValueHistogram(name: "inference_objective_input_tokens", labels: labels, buckets: Self.tokenBuckets, help: "Inference objective input sequence length distribution.").record(Double(usage.promptTokens))
        registry.makeValueHistogram(name: "inference_objective_output_tokens", labels: labels, buckets: Self.tokenBuckets, help: "Inference objective output sequence length distribution.").record(Double(usage.completionTokens))
        cachedTokens.increment(by: Int64(usage.cachedTokens))
    }

    func updatePool(ready: Int, scheduler: Scheduler?) {
        readyPods.set(to: Double(ready))
        if let scheduler {
            indexerSize.set(to: Double(scheduler.prefixIndexSize))
            indexerHitRatio.set(to: scheduler.prefixHitRatio)
        }
    }

    public func render() -> [UInt8] { registry.emitToBuffer() }
}
