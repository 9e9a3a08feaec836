import Foundation
import Yams

/// A plugin as a configuration names it: its type, its name (the type unless given) and
/// its parameters. ``PluginRegistry/make(_:)`` builds an instance from it.
public struct PluginSpec: Sendable {
    public var type: String
    public var name: String
    public var parameters: [String: SendableValue]

    public init(type: String, name: String? = nil, parameters: [String: SendableValue] = [:]) {
        self.type = type
        self.name = name ?? type
        self.parameters = parameters
    }
}

/// A scheduling profile as a configuration names it: plugins by name, scorers weighted.
public struct ProfileSpec: Sendable {
    public struct Entry: Sendable {
        public var pluginRef: String
        public var weight: Double?
    }
    public var name: String
    public var plugins: [Entry]
}

/// An llm-d / Gateway API Inference Extension `EndpointPickerConfig`: plugins by `type`
/// (with an optional `name`) and scheduling profiles that weight them. A configuration is
/// data: specs, validated when loaded (the same checks every Scheduler's fresh instances
/// pass); ``instantiate(ringSize:)`` builds the plugins.
public struct EndpointPickerConfig: Sendable {
    /// A profile with its plugins: filters in order, weighted scorers, one picker.
    public struct Profile: Sendable {
        public var name: String
        public var filters: [any EndpointFilter]
        public var scorers: [(scorer: any EndpointScorer, weight: Double)]
        public var picker: any EndpointPicker

        /// The ledger states the profile's plugins read.
        var ledgerStates: [LedgerStateSpec] { scorers.flatMap(\.scorer.ledgerStates) + picker.ledgerStates }
    }

    /// Fresh plugins for one Scheduler: every profile (those the handler implies included),
    /// the primary's name and the profile handler.
    public struct Plugins: Sendable {
        public var profiles: [String: Profile]
        public var primary: String
        public var handler: any ProfileHandler
        public var primaryProfile: Profile { profiles[primary]! }
    }

    /// The name the configuration goes by (a built-in's name, else `custom`).
    public var name: String
    public var plugins: [PluginSpec]
    /// The profiles as written (or one `default` profile of every plugin when none is).
    public var profileSpecs: [ProfileSpec]
    /// The YAML this configuration came from.
    public var source: String

    /// The profiles, with fresh plugins.
    public var profiles: [Profile] {
        let built = try! instantiate()
        return profileSpecs.compactMap { built.profiles[$0.name] }
    }

    /// The profile requests use unless the profile handler says otherwise: the one named
    /// `default`, else the first.
    public var primaryProfile: Profile { try! instantiate().primaryProfile }

    var primaryName: String {
        profileSpecs.first { $0.name == "default" }?.name ?? profileSpecs[0].name
    }

    /// Builds every plugin afresh from the specs. `ringSize`: the `minimumRingSize` of the
    /// consistent-hash profile a handler implies.
    public func instantiate(ringSize: Int = ConsistentHashPicker.defaultRingSize) throws -> Plugins {
        var instances: [String: PluginInstance] = [:]
        for spec in plugins { instances[spec.name] = try PluginRegistry.make(spec) }
        var profiles: [String: Profile] = [:]
        for spec in profileSpecs {
            profiles[spec.name] = try Self.makeProfile(name: spec.name, entries: spec.plugins.map { ($0.pluginRef, $0.weight) }, instances: instances)
        }
        let handlers = plugins.compactMap { spec -> (any ProfileHandler)? in
            if case .profileHandler(let h)? = instances[spec.name] { h } else { nil }
        }
        guard handlers.count <= 1 else {
            throw KVRouteError(code: .invalidConfig, message: "two profile handlers (\(handlers.map(\.name).joined(separator: ", "))); a configuration takes one")
        }
        let handler = handlers.first ?? SingleProfileHandler(name: "single-profile-handler")
        for implied in handler.impliedProfiles where profiles[implied] == nil {
            profiles[implied] = Self.impliedProfile(implied, ringSize: ringSize)
        }
        for named in [handler.profile(for: Self.headersOnlyProbe, headersOnly: true), handler.fallback(after: KVRouteError(code: .internalError, message: ""), in: primaryName)] {
            if let named, profiles[named] == nil {
                throw KVRouteError(code: .invalidConfig, message: "profile handler \"\(handler.name)\" names profile \"\(named)\", which the configuration does not define")
            }
        }
        return Plugins(profiles: profiles, primary: primaryName, handler: handler)
    }

    /// A bodiless request with a session: what a handler's headers-only profile is asked for.
    static let headersOnlyProbe = InferenceRequest(requestID: "", model: "", prompt: .none, sessionKey: "s")

    /// Profiles kvroute defines itself: `consistent-hash`, the mesh's ring on the session
    /// (every endpoint that is up, metrics fresh or not).
    static func impliedProfile(_ name: String, ringSize: Int) -> Profile? {
        guard name == SingleProfileHandler.meshProfile else { return nil }
        return Profile(name: name, filters: [HealthFilter(name: "healthy-filter", checkMetricsAge: false)], scorers: [],
                       picker: ConsistentHashPicker(name: "consistent-hash-picker", minimumRingSize: ringSize))
    }

    public static func load(yaml: String, name: String = "custom") throws -> EndpointPickerConfig {
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
        var specs: [PluginSpec] = []
        var names: Set<String> = []
        for (i, item) in pluginList.enumerated() {
            guard let p = item as? [String: Any], let type = p["type"] as? String, !type.isEmpty else {
                throw KVRouteError(code: .invalidConfig, message: "plugins[\(i)] needs a \"type\"")
            }
            let name = (p["name"] as? String) ?? type
            guard names.insert(name).inserted else {
                throw KVRouteError(code: .invalidConfig, message: "two plugins are named \"\(name)\"")
            }
            let params = (p["parameters"] as? [String: Any]) ?? [:]
            if p["parameters"] != nil && !(p["parameters"] is [String: Any]) && !(p["parameters"] is NSNull) {
                throw KVRouteError(code: .invalidConfig, message: "plugin \"\(name)\": parameters must be a map")
            }
            let spec = PluginSpec(type: type, name: name, parameters: params.mapValues(SendableValue.init))
            // Checked one by one, so the first bad plugin is the one reported.
            _ = try PluginRegistry.make(spec)
            specs.append(spec)
        }
        var profiles: [ProfileSpec] = []
        if let list = doc["schedulingProfiles"] as? [Any], !list.isEmpty {
            for (i, item) in list.enumerated() {
                guard let p = item as? [String: Any], let name = p["name"] as? String else {
                    throw KVRouteError(code: .invalidConfig, message: "schedulingProfiles[\(i)] needs a \"name\"")
                }
                let refs = (p["plugins"] as? [Any]) ?? []
                var entries: [ProfileSpec.Entry] = []
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
                    entries.append(.init(pluginRef: pluginRef, weight: weight))
                }
                profiles.append(ProfileSpec(name: name, plugins: entries))
            }
        } else {
            // No profiles: every plugin in one default profile, weight 1.
            profiles.append(ProfileSpec(name: "default", plugins: specs.map { .init(pluginRef: $0.name, weight: nil) }))
        }
        let config = EndpointPickerConfig(name: name, plugins: specs, profileSpecs: profiles, source: yaml)
        _ = try config.instantiate()
        return config
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
}
