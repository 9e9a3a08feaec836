import KVRouteCore
import KVRouteDataLayer
import Prometheus
import KVRouteGateway

/// The ext_proc picker's metrics: the Endpoint Picker's names (``PickerMetrics``, shared with
/// the gateway) plus streams and decision latency per request body mode, and what response
/// bodies report. Labels are bounded: body modes are a fixed set.
public final class EPPMetrics: Sendable {
    public let picker: PickerMetrics
    let streams: [ExtProcStream.BodyMode: Counter]
    let decisionDuration: [ExtProcStream.BodyMode: ValueHistogram]
    let cachedTokens: Counter

    static let tokenBuckets: [Double] = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072]

    public init(poolName: String) {
        picker = PickerMetrics(poolName: poolName)
        let r = picker.registry
        var s: [ExtProcStream.BodyMode: Counter] = [:]
        var d: [ExtProcStream.BodyMode: ValueHistogram] = [:]
        for mode in ExtProcStream.BodyMode.allCases {
            s[mode] = r.makeCounter(name: "kvroute_epp_streams_total", labels: [("mode", mode.rawValue)], help: "ext_proc streams by the request body mode Envoy announced.")
            d[mode] = r.makeValueHistogram(name: "kvroute_epp_decision_duration_seconds", labels: [("mode", mode.rawValue)], buckets: PickerMetrics.latencyBuckets, help: "From the message that completed the request to the routing answer being written, by request body mode.")
        }
        streams = s
        decisionDuration = d
        cachedTokens = r.makeCounter(name: "kvroute_epp_cached_prompt_tokens_total", labels: [], help: "Prompt tokens engines reported as served from their prefix cache.")
    }

    public var registry: PrometheusCollectorRegistry { picker.registry }
    public func setKnownModels(_ models: Set<String>) { picker.setKnownModels(models) }
    public func updatePool(ready: Int, scheduler: Scheduler?) { picker.updatePool(ready: ready, scheduler: scheduler) }
    public func render() -> [UInt8] { picker.render() }
    public func refresh(from tracker: EndpointTracker, scheduler: Scheduler?) { picker.refresh(from: tracker, scheduler: scheduler) }

    func streamOpened(mode: ExtProcStream.BodyMode) { streams[mode]?.increment() }

    func decided(_ d: RoutingDecision, mode: ExtProcStream.BodyMode, seconds: Double) {
        picker.decided(d)
        decisionDuration[mode]?.record(seconds)
    }

    func request(model: String, endpoint: EndpointAddress?, errorCode: Int?) {
        picker.request(model: model, endpoint: endpoint, errorCode: errorCode.map(String.init))
    }

    /// A response finished: its duration from the request headers and, when the body
    /// reported it, its token usage.
    func responded(model: String, seconds: Double, usage: ResponseUsage?) {
        picker.requestDuration(model: model, seconds: seconds)
        guard let usage else { return }
        let labels = PickerMetrics.modelLabels(picker.modelLabel(model))
        picker.registry.makeValueHistogram(name: "inference_objective_input_tokens", labels: labels, buckets: Self.tokenBuckets, help: "Inference objective input sequence length distribution.").record(Double(usage.promptTokens))
        picker.registry.makeValueHistogram(name: "inference_objective_output_tokens", labels: labels, buckets: Self.tokenBuckets, help: "Inference objective output sequence length distribution.").record(Double(usage.completionTokens))
        cachedTokens.increment(by: Int64(usage.cachedTokens))
    }
}
