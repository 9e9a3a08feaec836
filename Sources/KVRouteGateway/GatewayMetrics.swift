import KVRouteCore
import KVRouteDataLayer
import KVRouteRouting
import Prometheus

/// The gateway's metrics: the Endpoint Picker's names (``PickerMetrics``, which its
/// ``RequestRouter`` records into) plus upstream retries.
public final class GatewayMetrics: Sendable {
    public let picker: PickerMetrics
    let retries: Counter

    public init(poolName: String) {
        picker = PickerMetrics(poolName: poolName)
        retries = picker.registry.makeCounter(name: "kvroute_upstream_retries_total", labels: [], help: "Requests retried on another endpoint before the first response byte.")
    }

    public var registry: PrometheusCollectorRegistry { picker.registry }
    public func setKnownModels(_ models: Set<String>) { picker.setKnownModels(models) }
    public func updatePool(ready: Int, scheduler: Scheduler?) { picker.updatePool(ready: ready, scheduler: scheduler) }
    public func render() -> [UInt8] { picker.render() }
    public func refresh(from tracker: EndpointTracker, scheduler: Scheduler?) { picker.refresh(from: tracker, scheduler: scheduler) }
}
