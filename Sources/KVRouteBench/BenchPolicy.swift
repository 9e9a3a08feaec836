import KVRouteCore
import KVRouteRouting

/// A routing policy compared by the benchmark, with the name the report uses.
public struct BenchPolicy: Sendable {
    public var name: String
    /// The routing configuration: a built-in or a file.
    public var config: EndpointPickerConfig

    public static let standardNames = ["random", "round-robin", "session-hash", "least-load", "approx-prefix", "kvroute"]

    /// Resolves a policy name: one of ``standardNames`` or a built-in configuration's name
    /// (``EndpointPickerConfig/builtIn(_:)``), or `config:PATH` for an EndpointPickerConfig file.
    public static func named(_ name: String) throws -> BenchPolicy {
        if let config = EndpointPickerConfig.builtIn(name) { return BenchPolicy(name: name, config: config) }
        if name.hasPrefix("config:") {
            let path = String(name.dropFirst("config:".count))
            return BenchPolicy(name: name, config: try .load(path: path))
        }
        throw KVRouteError(code: .invalidConfiguration, message: "unknown policy \"\(name)\" (known: \((standardNames + EndpointPickerConfig.builtInNames.filter { !standardNames.contains($0) }).joined(separator: ", ")), config:FILE)")
    }

    /// A fresh router for one run (its own prefix index and counters), the front doors' kind;
    /// the simulation hands it the snapshots of each decision.
    func makeRouter(seed: UInt64) throws -> RequestRouter {
        try RequestRouter(
            configuration: .init(pickerConfig: config, ringSize: 4096, seed: seed, maxAttempts: 1),
            metrics: PickerMetrics(poolName: "bench"), snapshots: { [] })
    }
}
