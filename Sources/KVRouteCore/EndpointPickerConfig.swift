import Foundation
import Yams

/// An llm-d / Gateway API Inference Extension `EndpointPickerConfig`: plugins by `type`
/// (with an optional `name`) and scheduling profiles that weight them.
public struct EndpointPickerConfig: Sendable {
    /// A profile: filters in order, weighted scorers, one picker.
    public struct Profile: Sendable {
        public var name: String
        public var filters: [any EndpointFilter]
        public var scorers: [(scorer: any EndpointScorer, weight: Double)]
        public var picker: any EndpointPicker
    }

    public var profiles: [Profile]
    /// The YAML this configuration came from.
    public var source: String

    /// The profile requests use (kvroute runs one profile per request; with several, the
    /// one named `default`, else the first).
    public var primaryProfile: Profile {
        profiles.first { $0.name == "default" } ?? profiles[0]
    }

    public static func load(yaml: String) throws -> EndpointPickerConfig {
        let node: Node?
        do { node = try Yams.compose(yaml: yaml) } catch {
            throw KVRouteError(code: .invalidConfig, message: "the EndpointPickerConfig is not valid YAML: \(error)", cause: error)
        }
        if let node { try checkSize(node) }
        let root = node?.any
        guard let doc = root as? [String: Any] else {
            throw KVRouteError(code: .invalidConfig, message: "the EndpointPickerConfig must be a YAML map")
        }
        if let kind = doc["kind"] as? String, kind != "EndpointPickerConfig" {
            throw KVRouteError(code: .invalidConfig, message: "kind is \"\(kind)\", expected EndpointPickerConfig")
        }
        let known: Set = ["apiVersion", "kind", "plugins", "schedulingProfiles", "featureGates", "saturationDetector", "data", "metadata", "parser"]
        if let extra = doc.keys.first(where: { !known.contains($0) }) {
            throw KVRouteError(code: .invalidConfig, message: "unknown top-level field \"\(extra)\"")
        }
        guard let pluginList = doc["plugins"] as? [Any], !pluginList.isEmpty else {
            throw KVRouteError(code: .invalidConfig, message: "\"plugins\" must list at least one plugin")
        }
        var instances: [String: PluginInstance] = [:]
        var order: [String] = []
        for (i, item) in pluginList.enumerated() {
            guard let p = item as? [String: Any], let type = p["type"] as? String, !type.isEmpty else {
                throw KVRouteError(code: .invalidConfig, message: "plugins[\(i)] needs a \"type\"")
            }
            let name = (p["name"] as? String) ?? type
            guard instances[name] == nil else {
                throw KVRouteError(code: .invalidConfig, message: "two plugins are named \"\(name)\"")
            }
            let params = (p["parameters"] as? [String: Any]) ?? [:]
            if p["parameters"] != nil && !(p["parameters"] is [String: Any]) && !(p["parameters"] is NSNull) {
                throw KVRouteError(code: .invalidConfig, message: "plugin \"\(name)\": parameters must be a map")
            }
            instances[name] = try PluginRegistry.make(type: type, name: name, parameters: params)
            order.append(name)
        }
        var profiles: [Profile] = []
        if let list = doc["schedulingProfiles"] as? [Any], !list.isEmpty {
            for (i, item) in list.enumerated() {
                guard let p = item as? [String: Any], let name = p["name"] as? String else {
                    throw KVRouteError(code: .invalidConfig, message: "schedulingProfiles[\(i)] needs a \"name\"")
                }
                let refs = (p["plugins"] as? [Any]) ?? []
                var entries: [(String, Double?)] = []
                for r in refs {
                    guard let ref = r as? [String: Any], let pluginRef = ref["pluginRef"] as? String else {
                        throw KVRouteError(code: .invalidConfig, message: "profile \"\(name)\": every entry needs a \"pluginRef\"")
                    }
                    var weight: Double?
                    if let w = ref["weight"] {
                        guard let d = (w as? Int).map(Double.init) ?? (w as? Double), d >= 0, d.isFinite else {
                            throw KVRouteError(code: .invalidConfig, message: "profile \"\(name)\": weight of \"\(pluginRef)\" must be a finite non-negative number")
                        }
                        weight = d
                    }
                    entries.append((pluginRef, weight))
                }
                profiles.append(try makeProfile(name: name, entries: entries, instances: instances))
            }
        } else {
            // No profiles: every plugin in one default profile, weight 1.
            profiles.append(try makeProfile(name: "default", entries: order.map { ($0, nil) }, instances: instances))
        }
        return EndpointPickerConfig(profiles: profiles, source: yaml)
    }

    /// The most values a configuration may hold once its aliases are expanded: a few dozen
    /// plugins need a few hundred; nested aliases ("billion laughs") reach billions.
    static let maxYAMLNodes = 100_000

    /// Counts the values an alias-expanding conversion would visit, without recursion, and
    /// stops at ``maxYAMLNodes``.
    static func checkSize(_ root: Node) throws {
        var stack = [root]
        var count = 0
        while let node = stack.popLast() {
            count += 1
            guard count <= maxYAMLNodes else {
                throw KVRouteError(code: .invalidConfig, message: "the EndpointPickerConfig is too large: more than \(maxYAMLNodes) values once its aliases are expanded")
            }
            switch node {
            case .mapping(let m):
                for (k, v) in m {
                    stack.append(k)
                    stack.append(v)
                }
            case .sequence(let list): stack.append(contentsOf: list)
            default: break
            }
        }
    }

    static func makeProfile(name: String, entries: [(String, Double?)], instances: [String: PluginInstance]) throws -> Profile {
        var filters: [any EndpointFilter] = []
        var scorers: [(any EndpointScorer, Double)] = []
        var picker: (any EndpointPicker)?
        for (ref, weight) in entries {
            guard let instance = instances[ref] else {
                throw KVRouteError(code: .invalidConfig, message: "profile \"\(name)\" refers to plugin \"\(ref)\", which the plugins list does not define")
            }
            switch instance {
            case .filter(let f): filters.append(f)
            case .scorer(let s): scorers.append((s, weight ?? 1))
            case .picker(let p):
                guard picker == nil else { throw KVRouteError(code: .invalidConfig, message: "profile \"\(name)\" has two pickers") }
                picker = p
            case .profileHandler: break
            }
        }
        guard let picker else {
            throw KVRouteError(code: .invalidConfig, message: "profile \"\(name)\" has no picker (add max-score-picker)")
        }
        return Profile(name: name, filters: filters, scorers: scorers, picker: picker)
    }

    /// kvroute's own profile, tuned with `kvroute bench` on shared-prefix, multi-turn and the
    /// Mooncake trace. Prefix affinity (weight 3, over the first 256 blocks of 64 characters,
    /// as llm-d: a long shared head counts fully instead of being diluted by a long unique
    /// tail) is balanced against saturation (weight 3: the router's in-flight requests plus
    /// the waiting queue against 8, or KV usage above 50 %): a prefix match wins while its
    /// endpoint has headroom, and a hot prefix spreads once that endpoint fills up. Prompts with no match go where the router has the fewest requests in
    /// flight (relative, weight 1) and the shortest queue (1); KV usage (1) breaks ties;
    /// session affinity (1) keeps conversations together when the prefix signal is weak.
    public static let kvrouteDefaultYAML = """
    apiVersion: inference.networking.x-k8s.io/v1alpha1
    kind: EndpointPickerConfig
    plugins:
    - type: decode-filter
    - type: prefix-cache-scorer
      parameters:
        blockSize: 16
        maxPrefixBlocksToMatch: 256
        lruCapacityPerServer: 31250
    - type: saturation-scorer
      parameters:
        threshold: 8
        kvThreshold: 0.5
    - type: active-request-scorer
    - type: queue-scorer
    - type: kv-cache-utilization-scorer
    - type: session-affinity-scorer
    - type: max-score-picker
      parameters:
        maxNumOfEndpoints: 1
    - type: single-profile-handler
    schedulingProfiles:
    - name: default
      plugins:
      - pluginRef: decode-filter
      - pluginRef: prefix-cache-scorer
        weight: 3
      - pluginRef: saturation-scorer
        weight: 3
      - pluginRef: active-request-scorer
        weight: 1
      - pluginRef: queue-scorer
        weight: 1
      - pluginRef: kv-cache-utilization-scorer
        weight: 1
      - pluginRef: session-affinity-scorer
        weight: 1
      - pluginRef: max-score-picker
    """

    /// llm-d's default: queue 2, KV cache 2, prefix 3, max-score picker.
    public static let llmdDefaultYAML = """
    apiVersion: inference.networking.x-k8s.io/v1alpha1
    kind: EndpointPickerConfig
    plugins:
    - type: prefix-cache-scorer
      parameters:
        blockSize: 16
        maxPrefixBlocksToMatch: 256
        lruCapacityPerServer: 31250
    - type: queue-scorer
    - type: kv-cache-utilization-scorer
    - type: max-score-picker
    schedulingProfiles:
    - name: default
      plugins:
      - pluginRef: queue-scorer
        weight: 2
      - pluginRef: kv-cache-utilization-scorer
        weight: 2
      - pluginRef: prefix-cache-scorer
        weight: 3
      - pluginRef: max-score-picker
    """

    /// Least load: the router's in-flight count and the waiting queue, nothing else.
    public static let leastLoadYAML = """
    apiVersion: inference.networking.x-k8s.io/v1alpha1
    kind: EndpointPickerConfig
    plugins:
    - type: active-request-scorer
    - type: queue-scorer
    - type: max-score-picker
    schedulingProfiles:
    - name: default
      plugins:
      - pluginRef: active-request-scorer
        weight: 1
      - pluginRef: queue-scorer
        weight: 1
      - pluginRef: max-score-picker
    """

    public static var kvrouteDefault: EndpointPickerConfig { try! load(yaml: kvrouteDefaultYAML) }
    public static var llmdDefault: EndpointPickerConfig { try! load(yaml: llmdDefaultYAML) }
}
