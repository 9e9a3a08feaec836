/// Plugin factories by `type`, so EndpointPickerConfig files written for llm-d load unchanged.
/// A factory validates its parameters and builds a fresh instance; plugins keep no state
/// (what they learn lives in the Scheduler's ``RoutingLedger``), so every Scheduler builds its
/// own from the configuration's specs.
public enum PluginRegistry {
    typealias Factory = @Sendable (_ name: String, _ parameters: inout PluginParameters) throws -> PluginInstance

    static let factories: [String: Factory] = [
        "prefix-cache-scorer": { n, p in .scorer(try PrefixCacheScorer.make(name: n, parameters: &p)) },
        "precise-prefix-cache-scorer": { n, p in .scorer(try PrecisePrefixCacheScorer.make(name: n, parameters: &p)) },
        "predicted-latency-scorer": { n, p in .scorer(try PredictedLatencyScorer.make(name: n, parameters: &p)) },
        "predicted-latency-picker": { n, p in .picker(try PredictedLatencyPicker.make(name: n, parameters: &p)) },
        "round-robin-picker": { n, p in .picker(try RoundRobinPicker.make(name: n, parameters: &p)) },
        "consistent-hash-picker": { n, p in .picker(try ConsistentHashPicker.make(name: n, parameters: &p)) },
        "queue-scorer": { n, p in .scorer(try QueueScorer.make(name: n, parameters: &p)) },
        "kv-cache-utilization-scorer": { n, p in .scorer(try KVCacheUtilizationScorer.make(name: n, parameters: &p)) },
        "kv-cache-scorer": { n, p in .scorer(try KVCacheUtilizationScorer.make(name: n, parameters: &p)) },
        "load-aware-scorer": { n, p in .scorer(try LoadAwareScorer.make(name: n, parameters: &p)) },
        "active-request-scorer": { n, p in .scorer(try ActiveRequestScorer.make(name: n, parameters: &p)) },
        "session-affinity-scorer": { n, p in .scorer(try SessionAffinityScorer.make(name: n, parameters: &p)) },
        "saturation-scorer": { n, p in .scorer(try SaturationScorer.make(name: n, parameters: &p)) },
        "decode-filter": { n, p in .filter(try LabelFilter.make(type: "decode-filter", name: n, parameters: &p)) },
        "prefill-filter": { n, p in .filter(try LabelFilter.make(type: "prefill-filter", name: n, parameters: &p)) },
        "by-label": { n, p in .filter(try LabelFilter.make(type: "by-label", name: n, parameters: &p)) },
        "by-label-selector": { n, p in .filter(try LabelFilter.make(type: "by-label-selector", name: n, parameters: &p)) },
        "healthy-filter": { n, p in .filter(try HealthFilter.make(name: n, parameters: &p)) },
        "max-score-picker": { n, p in .picker(try MaxScorePicker.make(name: n, parameters: &p)) },
        "random-picker": { n, p in .picker(try RandomPicker.make(name: n, parameters: &p)) },
        "weighted-random-picker": { n, p in .picker(try WeightedRandomPicker.make(name: n, parameters: &p)) },
        "single-profile-handler": { n, p in .profileHandler(try SingleProfileHandler.make(name: n, parameters: &p)) },
    ]

    /// Types llm-d knows that kvroute does not run (disaggregated prefill/decode, KV-event
    /// tracking): refused with a clear reason rather than silently ignored.
    static let unsupported: [String: String] = [
        "pd-profile-handler": "disaggregated prefill/decode profiles are not supported",
        "prefill-header-handler": "disaggregated prefill/decode is not supported",
        "lora-affinity-scorer": "LoRA affinity is not supported",
    ]

    public static var knownTypes: [String] { factories.keys.sorted() }

    static func make(type: String, name: String, parameters: [String: Any]) throws -> PluginInstance {
        try make(PluginSpec(type: type, name: name, parameters: parameters.mapValues(SendableValue.init)))
    }

    /// A fresh instance of the plugin `spec` describes; errors name the plugin and parameter.
    public static func make(_ spec: PluginSpec) throws -> PluginInstance {
        let type = spec.type, name = spec.name
        if let why = unsupported[type] {
            throw KVRouteError(code: .unknownPlugin, message: "plugin type \"\(type)\": \(why)")
        }
        guard let factory = factories[type] else {
            // Only names of a plausible length get a suggestion: the distance is quadratic.
            let hint = type.count > 64 ? nil : knownTypes.map { ($0, editDistance($0, type)) }.min { $0.1 < $1.1 }
            let suggestion = hint.flatMap { $0.1 <= 3 ? " (did you mean \"\($0.0)\"?)" : nil } ?? ""
            let shown = type.count > 64 ? type.prefix(64) + "…" : Substring(type)
            throw KVRouteError(code: .unknownPlugin, message: "unknown plugin type \"\(shown)\"\(suggestion); known types: \(knownTypes.joined(separator: ", "))")
        }
        var p = PluginParameters(plugin: name, values: spec.parameters)
        let instance = try factory(name, &p)
        try p.finish()
        return instance
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var prev = row[0]
            row[0] = i
            for j in 1...max(b.count, 1) where !b.isEmpty {
                let cur = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
                prev = cur
            }
        }
        return row[b.count]
    }
}
