import Foundation
import KVRouteCore

/// One `--endpoints` entry: a base URL whose host is an IP address (a fixed endpoint) or a
/// DNS name (re-resolved; every address it resolves to is an endpoint, as for a Kubernetes
/// headless Service).
public struct EndpointSpec: Sendable, Hashable, CustomStringConvertible {
    public var scheme: String
    public var host: String
    public var port: Int
    public var labels: [String: String]

    public init(scheme: String = "http", host: String, port: Int, labels: [String: String] = [:]) {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.labels = labels
    }

    public var description: String { "\(scheme)://\(host.contains(":") ? "[\(host)]" : host):\(port)" }

    /// True when `host` is an IP literal (no resolution needed).
    public var isAddress: Bool { IPAddressText.isIPv4(host) || host.contains(":") }

    /// Parses `http://host:port`, `host:port` or `[v6]:port` (a trailing path is ignored).
    public static func parse(_ text: String) throws -> EndpointSpec {
        var s = Substring(text.trimmingCharacters(in: .whitespaces))
        var scheme = "http"
        if let r = s.range(of: "://") {
            scheme = String(s[s.startIndex..<r.lowerBound]).lowercased()
            s = s[r.upperBound...]
        }
        guard scheme == "http" else {
            throw KVRouteError(code: .invalidConfiguration, message: "endpoint \"\(text)\": only http:// engines are supported")
        }
        if let slash = s.firstIndex(of: "/") { s = s[s.startIndex..<slash] }
        var host: Substring
        var portText: Substring?
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else {
                throw KVRouteError(code: .invalidConfiguration, message: "endpoint \"\(text)\": unclosed [ in IPv6 address")
            }
            host = s[s.index(after: s.startIndex)..<close]
            let after = s[s.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() }
        } else if let colon = s.lastIndex(of: ":") {
            host = s[s.startIndex..<colon]
            portText = s[s.index(after: colon)...]
        } else {
            host = s
        }
        guard !host.isEmpty else {
            throw KVRouteError(code: .invalidConfiguration, message: "endpoint \"\(text)\": no host")
        }
        let port = portText.map { Int($0) } ?? 80
        guard let port, (1...65535).contains(port) else {
            throw KVRouteError(code: .invalidConfiguration, message: "endpoint \"\(text)\": bad port")
        }
        return EndpointSpec(scheme: scheme, host: String(host), port: port)
    }

    /// Parses a comma-separated list.
    public static func parseList(_ text: String) throws -> [EndpointSpec] {
        try text.split(separator: ",").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.map { try parse(String($0)) }
    }
}

enum IPAddressText {
    static func isIPv4(_ s: String) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { p in UInt8(p) != nil }
    }
}

