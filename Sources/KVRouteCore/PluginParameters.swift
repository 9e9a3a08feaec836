/// Typed access to a plugin's `parameters` map; every error names the plugin and parameter.
public struct PluginParameters: Sendable {
    let plugin: String
    let values: [String: SendableValue]
    private(set) var used: Set<String> = []

    init(plugin: String, values: [String: Any]) {
        self.plugin = plugin
        self.values = values.mapValues(SendableValue.init)
    }

    init(plugin: String, values: [String: SendableValue]) {
        self.plugin = plugin
        self.values = values
    }

    func bad(_ key: String, _ why: String) -> KVRouteError {
        KVRouteError(code: .invalidConfig, message: "plugin \"\(plugin)\": parameter \"\(key)\" \(why)")
    }

    /// An integer from `min` to `max` (by default 2^31 - 1: sizes and counts, which plugins
    /// multiply, stay far from overflowing).
    public mutating func int(_ key: String, default d: Int, min: Int = 0, max: Int = Int(Int32.max)) throws -> Int {
        used.insert(key)
        guard let v = values[key] else { return d }
        guard case .number(let n) = v, let i = Int(exactly: n) else { throw bad(key, "must be an integer, got \(v)") }
        guard i >= min else { throw bad(key, "must be at least \(min), got \(i)") }
        guard i <= max else { throw bad(key, "must be at most \(max), got \(i)") }
        return i
    }

    /// A finite number of at least `min`.
    public mutating func double(_ key: String, default d: Double, min: Double = 0) throws -> Double {
        used.insert(key)
        guard let v = values[key] else { return d }
        guard case .number(let n) = v, n.isFinite else { throw bad(key, "must be a finite number, got \(v)") }
        guard n >= min else { throw bad(key, "must be at least \(min), got \(n)") }
        return n
    }

    public mutating func bool(_ key: String, default d: Bool) throws -> Bool {
        used.insert(key)
        guard let v = values[key] else { return d }
        guard case .bool(let b) = v else { throw bad(key, "must be true or false, got \(v)") }
        return b
    }

    public mutating func string(_ key: String, default d: String?) throws -> String? {
        used.insert(key)
        guard let v = values[key] else { return d }
        guard case .string(let s) = v else { throw bad(key, "must be a string, got \(v)") }
        return s
    }

    public mutating func stringMap(_ key: String) throws -> [String: String] {
        used.insert(key)
        guard let v = values[key] else { return [:] }
        guard case .map(let m) = v else { throw bad(key, "must be a map of strings") }
        var out: [String: String] = [:]
        for (k, x) in m {
            switch x {
            case .string(let s): out[k] = s
            case .number(let n): out[k] = SendableValue.number(n).description
            case .bool(let b): out[k] = String(b)
            default: throw bad(key, "must be a map of strings")
            }
        }
        return out
    }

    public mutating func ignore(_ keys: String...) { used.formUnion(keys) }

    /// Rejects parameters nobody read: a typo must not silently fall back to a default.
    public func finish() throws {
        let unknown = Set(values.keys).subtracting(used).sorted()
        if let first = unknown.first {
            throw KVRouteError(code: .invalidConfig, message: "plugin \"\(plugin)\": unknown parameter \"\(first)\"" + (used.isEmpty ? " (it takes no parameters)" : " (known: \(used.sorted().joined(separator: ", ")))"))
        }
    }
}

/// A YAML value in a Sendable form.
public indirect enum SendableValue: Sendable, CustomStringConvertible {
    case number(Double)
    case string(String)
    case bool(Bool)
    case list([SendableValue])
    case map([String: SendableValue])
    case null

    init(_ any: Any) {
        switch any {
        case let b as Bool: self = .bool(b)
        case let i as Int: self = .number(Double(i))
        case let d as Double: self = .number(d)
        case let s as String: self = .string(s)
        case let l as [Any]: self = .list(l.map(SendableValue.init))
        case let m as [String: Any]: self = .map(m.mapValues(SendableValue.init))
        default: self = .null
        }
    }

    public var description: String {
        switch self {
        case .number(let n): Int(exactly: n).map(String.init) ?? String(n)
        case .string(let s): "\"\(s)\""
        case .bool(let b): String(b)
        case .list(let l): "[\(l.map(\.description).joined(separator: ", "))]"
        case .map: "a map"
        case .null: "null"
        }
    }
}
