import Prometheus

/// The precise index's metrics, made once with bounded labels: `engine` takes the configured
/// engines' names only.
public final class PreciseIndexMetrics: Sendable {
    struct PerEngine: Sendable {
        let lag: Gauge
        let batches: Counter
        let gaps: Counter
        let replayed: Counter
        let dropped: Counter
        let restarts: Counter
        let malformed: Counter
    }

    let blocks: Gauge
    let bytes: Gauge
    let evictions: Counter
    let engines: [String: PerEngine]
    /// 1 while an engine's hashing differs from the picker's, by field.
    let mismatch: [String: [HashingSettings.Mismatch.Field: Gauge]]

    public init(registry: PrometheusCollectorRegistry, engines: [String]) {
        blocks = registry.makeGauge(name: "kvroute_precise_index_blocks", labels: [], help: "(engine, block hash) entries the precise prefix-cache index holds.")
        bytes = registry.makeGauge(name: "kvroute_precise_index_bytes", labels: [], help: "Bytes the precise prefix-cache index has allocated.")
        evictions = registry.makeCounter(name: "kvroute_precise_index_evictions_total", labels: [], help: "Entries dropped from the precise index for its memory budget.")
        var per: [String: PerEngine] = [:]
        for e in Set(engines) {
            let l = [("engine", e)]
            per[e] = PerEngine(
                lag: registry.makeGauge(name: "kvroute_kv_events_lag_seconds", labels: l, help: "Seconds between an engine's last KV event batch and its application to the index."),
                batches: registry.makeCounter(name: "kvroute_kv_events_batches_total", labels: l, help: "KV event batches applied to the precise index."),
                gaps: registry.makeCounter(name: "kvroute_kv_events_gaps_total", labels: l, help: "Jumps in an engine's KV event sequence (lost batches)."),
                replayed: registry.makeCounter(name: "kvroute_kv_events_resyncs_total", labels: l + [("outcome", "replayed")], help: "Gaps in an engine's KV events, by how the index caught up: replayed from the engine, or the engine's entries dropped."),
                dropped: registry.makeCounter(name: "kvroute_kv_events_resyncs_total", labels: l + [("outcome", "dropped")], help: "Gaps in an engine's KV events, by how the index caught up: replayed from the engine, or the engine's entries dropped."),
                restarts: registry.makeCounter(name: "kvroute_kv_events_restarts_total", labels: l, help: "Engine restarts seen in KV events (the sequence went back); the engine's entries are dropped."),
                malformed: registry.makeCounter(name: "kvroute_kv_events_malformed_total", labels: l, help: "KV event payloads that did not decode."))
        }
        self.engines = per
        var mismatch: [String: [HashingSettings.Mismatch.Field: Gauge]] = [:]
        for e in Set(engines) {
            for f in HashingSettings.Mismatch.Field.allCases {
                mismatch[e, default: [:]][f] = registry.makeGauge(
                    name: "kvroute_precise_hashing_mismatch", labels: [("engine", e), ("field", f.rawValue)],
                    help: "1 while an engine's block size, hash algorithm (vllm:cache_config_info) or KV event hashes differ from the picker's; precise prefix scores for it are then meaningless.")
            }
        }
        self.mismatch = mismatch
    }
}
