import Foundation

/// One engine whose metrics the validator reads.
public struct EngineTarget: Sendable, Hashable {
    /// `ip:port`: how a gateway's `x-upstream-host` and Prometheus's `instance` name it.
    public var address: String
    /// Base URL (`http://ip:port`), where `/metrics`, `/health` and `/reset_prefix_cache` live.
    public var baseURL: String
    /// Pod name, when found through Kubernetes (what `x-inference-pod` carries).
    public var name: String?

    public init(address: String, baseURL: String, name: String? = nil) {
        self.address = address
        self.baseURL = baseURL
        self.name = name
    }

    /// An engine from `--metrics-urls`: its base URL or its full `/metrics` URL.
    public init(url: String) throws {
        var base = url.trimmingCharacters(in: .whitespaces)
        if base.hasSuffix("/") { base.removeLast() }
        if base.hasSuffix("/metrics") { base.removeLast("/metrics".count) }
        if base.hasSuffix("/") { base.removeLast() }
        guard let u = URL(string: base), let host = u.host, !host.isEmpty, u.scheme == "http" || u.scheme == "https" else {
            throw ValidationFailure(.usage, "bad engine metrics URL \(url) (expected http://host:port or http://host:port/metrics)")
        }
        let port = u.port ?? (u.scheme == "https" ? 443 : 80)
        self.init(address: "\(host.contains(":") ? "[\(host)]" : host):\(port)", baseURL: base)
    }

    /// The name shown in reports: the pod name when known, else the address.
    public var label: String { name ?? address }
}
