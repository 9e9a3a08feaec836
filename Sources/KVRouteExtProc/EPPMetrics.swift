import KVRouteCore
import KVRouteDataLayer
import Prometheus
import KVRouteRouting

/// The ext_proc picker's metrics: the Endpoint Picker's names (``PickerMetrics``, shared with
/// the gateway) plus streams and decision latency per request body mode, and what response
/// bodies report. Labels are bounded: body modes are a fixed set.
public final class EPPMetrics: Sendable {
    public let picker: PickerMetrics
    let streams: [ExtProcStream.BodyMode: Counter]
    let decisionDuration: [ExtProcStream.BodyMode: ValueHistogram]

    public init(poolName: String) {
        picker = PickerMetrics(poolName: poolName, cachedTokensName: "kvroute_epp_cached_prompt_tokens_total")
        let r = picker.registry
        var s: [ExtProcStream.BodyMode: Counter] = [:]
        var d: [ExtProcStream.BodyMode: ValueHistogram] = [:]
        for mode in ExtProcStream.BodyMode.allCases {
            s[mode] = r.makeCounter(name: "kvroute_epp_streams_total", labels: [("mode", mode.rawValue)], help: "ext_proc streams by the request body mode Envoy announced.")
            d[mode] = r.makeValueHistogram(name: "kvroute_epp_decision_duration_seconds", labels: [("mode", mode.rawValue)], buckets: PickerMetrics.latencyBuckets, help: "From the message that completed the request to the routing answer being written, by request body mode.")
        }
        streams = s
        decisionDuration = d
        _ = picker.cachedTokens
    }

    public var registry: PrometheusCollectorRegistry { picker.registry }
    public func setKnownModels(_ models: Set<String>) { picker.setKnownModels(models) }
    public func updatePool(ready: Int, scheduler: Scheduler?) { picker.updatePool(ready: ready, scheduler: scheduler) }
    public func render() -> [UInt8] { picker.render() }
    public func refresh(from tracker: EndpointTracker, scheduler: Scheduler?) { picker.refresh(from: tracker, scheduler: scheduler) }

    func streamOpened(mode: ExtProcStream.BodyMode) { streams[mode]?.increment() }

    /// The routing answer was written, `seconds` after the message that completed the request.
    func decided(mode: ExtProcStream.BodyMode, seconds: Double) {
        decisionDuration[mode]?.record(seconds)
    }
}
