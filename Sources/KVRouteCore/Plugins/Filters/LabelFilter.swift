/// Keeps endpoints by label. `decode-filter` keeps `llm-d.ai/role` ∈ {decode, both} or no
/// role label; `prefill-filter` keeps `prefill`; `by-label` keeps `label` ∈ `validValues`
/// (`allowsNoLabel` to keep unlabelled ones); `by-label-selector` keeps endpoints matching
/// every `matchLabels` pair.
public struct LabelFilter: EndpointFilter {
    public let type: String
    public let name: String
    let label: String
    let values: Set<String>
    let allowsNoLabel: Bool
    let selector: [String: String]
    /// Why an endpoint is dropped, written once.
    let reason: String

    public init(type: String, name: String, label: String, values: Set<String>, allowsNoLabel: Bool, selector: [String: String] = [:]) {
        self.type = type
        self.name = name
        self.label = label
        self.values = values
        self.allowsNoLabel = allowsNoLabel
        self.selector = selector
        reason = selector.isEmpty ? "label \(label) not in \(values.sorted())" : "labels do not match \(selector)"
    }

    public static let roleLabel = "llm-d.ai/role"

    /// The four label filters from their configured `type` and parameters.
    static func make(type: String, name: String, parameters p: inout PluginParameters) throws -> LabelFilter {
        switch type {
        case "decode-filter":
            return LabelFilter(type: type, name: name, label: roleLabel, values: ["decode", "both"], allowsNoLabel: true)
        case "prefill-filter":
            return LabelFilter(type: type, name: name, label: roleLabel, values: ["prefill"], allowsNoLabel: false)
        case "by-label-selector":
            let m = try p.stringMap("matchLabels")
            guard !m.isEmpty else { throw p.bad("matchLabels", "is required") }
            return LabelFilter(type: type, name: name, label: "", values: [], allowsNoLabel: false, selector: m)
        default:
            guard let label = try p.string("label", default: nil) else { throw p.bad("label", "is required") }
            let values = try p.stringMap("validValuesMap")
            var list: [String] = Array(values.values)
            if case .list(let l)? = p.values["validValues"] {
                p.ignore("validValues")
                list += l.compactMap { if case .string(let s) = $0 { s } else { nil } }
            }
            p.ignore("allowsNoLabel")
            let allows: Bool = if case .bool(let b)? = p.values["allowsNoLabel"] { b } else { false }
            return LabelFilter(type: type, name: name, label: label, values: Set(list), allowsNoLabel: allows)
        }
    }

    public func filter(_ candidates: [EndpointSnapshot], context: inout SchedulingContext) -> (kept: [EndpointSnapshot], reason: String) {
        if !selector.isEmpty {
            return (candidates.keeping { c in selector.allSatisfy { c.labels[$0.key] == $0.value } }, reason)
        }
        let kept = candidates.keeping { c in
            guard let v = c.labels[label] else { return allowsNoLabel }
            return values.contains(v)
        }
        return (kept, reason)
    }
}

extension [EndpointSnapshot] {
    /// The endpoints `keep` accepts, in order; the array itself (its storage shared, nothing
    /// copied) when it accepts them all, as filters usually do.
    func keeping(_ keep: (EndpointSnapshot) -> Bool) -> [EndpointSnapshot] {
        guard let first = firstIndex(where: { !keep($0) }) else { return self }
        var kept = Array(self[..<first])
        for c in self[index(after: first)...] where keep(c) { kept.append(c) }
        return kept
    }
}

/// `healthy-filter`: drops unhealthy endpoints and those whose metrics are older than
/// `maxMetricsAge` seconds (1; `checkMetricsAge: false` keeps every endpoint that is up, as a
/// mesh load balancer does) — unless that would drop every endpoint, in which case all are
/// kept (routing somewhere beats refusing when the whole view is stale). Always applied
/// first: a profile without one gets the default.
public struct HealthFilter: EndpointFilter {
    public let type = "healthy-filter"
    public let name: String
    public let maxMetricsAge: Double
    public let checkMetricsAge: Bool
    /// Why an endpoint is dropped while others are fresh, written once.
    let staleReason: String

    public init(name: String = "healthy-filter", maxMetricsAge: Double = 1.0, checkMetricsAge: Bool = true) {
        self.name = name
        self.maxMetricsAge = maxMetricsAge
        self.checkMetricsAge = checkMetricsAge
        staleReason = checkMetricsAge ? "unhealthy or metrics older than \(maxMetricsAge)s" : "unhealthy"
    }

    static func make(name: String, parameters p: inout PluginParameters) throws -> HealthFilter {
        HealthFilter(name: name, maxMetricsAge: try p.double("maxMetricsAge", default: 1.0), checkMetricsAge: try p.bool("checkMetricsAge", default: true))
    }

    public func filter(_ candidates: [EndpointSnapshot], context: inout SchedulingContext) -> (kept: [EndpointSnapshot], reason: String) {
        let fresh = candidates.keeping { $0.healthy && (!checkMetricsAge || ($0.metricsAge.map { $0 <= maxMetricsAge } ?? false)) }
        if !fresh.isEmpty { return (fresh, staleReason) }
        let healthy = candidates.keeping(\.healthy)
        return (healthy.isEmpty ? candidates : healthy, "unhealthy")
    }
}
