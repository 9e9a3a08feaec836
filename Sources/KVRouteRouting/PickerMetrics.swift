import KVRouteCore
import KVRouteDataLayer
import ServiceLifecycle
import Prometheus
import Synchronization

/// The metrics every kvroute front door exports under the Gateway API Inference Extension
/// Endpoint Picker's names, so existing llm-d dashboards and alerts read them: scheduling
/// latency, pool and prefix-index gauges, requests by model and endpoint. The gateway and the
/// ext_proc picker each add their own on top of one registry. Labels are bounded: models are
/// the ones engines report serving (anything else, and everything before the first scrape, is
/// `other`), endpoints are pool members, rejection reasons a fixed set.
public final class PickerMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    let schedulerDuration: ValueHistogram
    let readyPods: Gauge
    let indexerSize: Gauge
    let indexerHitRatio: Gauge
    let inFlight: Gauge
    let samplesRejected: [EngineSampleRejection: Counter]
    /// The counter of prompt tokens engines report served from their prefix cache.
    let cachedTokensName: String
    private let knownModels = Mutex<Set<String>>([])
    /// Rejections already added to ``samplesRejected``, from the scraper's running totals.
    private let rejectionsCounted = Mutex<[EngineSampleRejection: Int]>([:])

    /// Most model names that label series; engines report few, a misbehaving one many.
    static let maxKnownModels = 64
    /// The label value for any model no engine reports.
    package static let otherModel = "other"

    package static let latencyBuckets: [Double] = [0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1]
    static let tokenBuckets: [Double] = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072]
    static let requestBuckets: [Double] = [0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600]

    public init(poolName: String, cachedTokensName: String = "kvroute_cached_prompt_tokens_total") {
        self.cachedTokensName = cachedTokensName
        let r = registry
        schedulerDuration = r.makeValueHistogram(name: "inference_extension_scheduler_e2e_duration_seconds", labels: [], buckets: Self.latencyBuckets, help: "End-to-end scheduling latency distribution in seconds.")
        readyPods = r.makeGauge(name: "inference_pool_ready_pods", labels: [("name", poolName)], help: "The number of ready pods in the inference server pool.")
        indexerSize = r.makeGauge(name: "inference_extension_prefix_indexer_size", labels: [], help: "Size of the prefix indexer (block hashes held).")
        inFlight = r.makeGauge(name: "kvroute_requests_in_flight", labels: [], help: "Requests routed and not yet finished, as the routing core counts them.")
        indexerHitRatio = r.makeGauge(name: "inference_extension_prefix_indexer_hit_ratio", labels: [], help: "Ratio of prefix blocks matched to blocks looked up.")
        var rejected: [EngineSampleRejection: Counter] = [:]
        for reason in EngineSampleRejection.allCases {
            rejected[reason] = r.makeCounter(name: "kvroute_engine_samples_rejected_total", labels: [("reason", reason.rawValue)], help: "Samples of engines' /metrics pages left out because their value or labels are out of range.")
        }
        samplesRejected = rejected
    }

    /// The models engines serve; they bound the `model_name` label.
    public func setKnownModels(_ models: Set<String>) {
        let kept = models.count <= Self.maxKnownModels ? models : Set(models.sorted().prefix(Self.maxKnownModels))
        knownModels.withLock { $0 = kept }
    }

    /// A client's model as a label value: itself when an engine reports serving it, else
    /// ``otherModel``, so clients cannot mint series.
    package func modelLabel(_ m: String) -> String {
        knownModels.withLock { $0.contains(m) } ? m : Self.otherModel
    }

    /// Brings ``samplesRejected`` up to the scraper's running totals.
    public func recordRejections(_ totals: [EngineSampleRejection: Int]) {
        let deltas = rejectionsCounted.withLock { counted in
            totals.compactMap { reason, total -> (EngineSampleRejection, Int)? in
                let delta = total - (counted[reason] ?? 0)
                guard delta > 0 else { return nil }
                counted[reason] = total
                return (reason, delta)
            }
        }
        for (reason, delta) in deltas { samplesRejected[reason]?.increment(by: Int64(delta)) }
    }

    /// A routing decision: its latency, why a fallback took it, and the prefix blocks the
    /// picker expects its chosen endpoint to hit.
    package func decided(_ d: RoutingDecision) {
        schedulerDuration.record(d.decisionSeconds)
        if let reason = d.fallbackReason {
            let label = reason.hasPrefix("picker-error") ? "picker-error" : reason
            registry.makeCounter(name: "kvroute_fallback_decisions_total", labels: [("reason", label)], help: "Decisions taken by the consistent-hash fallback instead of the picker.").increment()
        }
        if let r = d.result {
            registry.makeCounter(name: "kvroute_prefix_blocks_matched_total", labels: [], help: "Prefix blocks the picker expected to hit on its chosen endpoints.").increment(by: Int64(r.explanation.matchedPrefixBlocks))
        }
    }

    /// One request counted by model; errors by code; routed requests by endpoint.
    package func request(model: String, endpoint: EndpointAddress?, errorCode: String?) {
        let labels = Self.modelLabels(modelLabel(model))
        registry.makeCounter(name: "inference_objective_request_total", labels: labels, help: "Counter of inference objective requests broken out for each model and target model.").increment()
        if let errorCode {
            registry.makeCounter(name: "inference_objective_request_error_total", labels: labels + [("error_code", errorCode)], help: "Counter of inference objective requests errors.").increment()
        }
        if let endpoint {
            registry.makeCounter(name: "kvroute_requests_routed_total", labels: [("endpoint", endpoint.description)], help: "Requests routed per endpoint.").increment()
        }
    }

    /// A response's duration, by model.
    package func requestDuration(model: String, seconds: Double) {
        registry.makeValueHistogram(name: "inference_objective_request_duration_seconds", labels: Self.modelLabels(modelLabel(model)), buckets: Self.requestBuckets, help: "Inference objective response latency distribution in seconds.").record(seconds)
    }

    /// What a response reported: its token counts by model, and the prompt tokens engines
    /// served from their prefix cache.
    package func usage(model: String, _ usage: ResponseUsage) {
        let labels = Self.modelLabels(modelLabel(model))
        registry.makeValueHistogram(name: "inference_objective_input_tokens", labels: labels, buckets: Self.tokenBuckets, help: "Inference objective input sequence length distribution.").record(Double(usage.promptTokens))
        registry.makeValueHistogram(name: "inference_objective_output_tokens", labels: labels, buckets: Self.tokenBuckets, help: "Inference objective output sequence length distribution.").record(Double(usage.completionTokens))
        cachedTokens.increment(by: Int64(usage.cachedTokens))
    }

    /// Prompt tokens engines reported as served from their prefix cache.
    package var cachedTokens: Counter {
        registry.makeCounter(name: cachedTokensName, labels: [], help: "Prompt tokens engines reported as served from their prefix cache.")
    }

    package static func modelLabels(_ m: String) -> [(String, String)] { [("model_name", m), ("target_model_name", m)] }

    public func updatePool(ready: Int, scheduler: Scheduler?) {
        readyPods.set(to: Double(ready))
        if let scheduler {
            indexerSize.set(to: Double(scheduler.prefixIndexSize))
            indexerHitRatio.set(to: scheduler.prefixHitRatio)
            inFlight.set(to: Double(scheduler.inFlightTotal))
        }
    }

    /// Pool gauges, the known models (which bound `model_name`) and rejected engine samples
    /// from the tracker.
    public func refresh(from tracker: EndpointTracker, scheduler: Scheduler?) {
        updatePool(ready: tracker.pool.healthyCount, scheduler: scheduler)
        setKnownModels(tracker.knownModels)
        recordRejections(tracker.scraper.rejections.totals)
    }

    public func render() -> [UInt8] { registry.emitToBuffer() }
}

/// Keeps pool gauges and known models current between scrapes of `/metrics`.
public struct PickerMetricsRefresher: Service {
    let refresh: @Sendable () -> Void
    public init(_ refresh: @escaping @Sendable () -> Void) { self.refresh = refresh }
    public func run() async throws {
        let refresh = self.refresh
        await runPeriodically(every: .seconds(1)) { refresh() }
    }
}
