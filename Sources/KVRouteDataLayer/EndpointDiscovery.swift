import KVRouteCore
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Keeps the pool's membership equal to the configured endpoints: IP endpoints as given,
/// DNS names re-resolved every `interval` (a Kubernetes headless Service lists one address
/// per ready pod). A failed resolution keeps the previous addresses.
public struct EndpointDiscovery: Service {
    public let specs: [EndpointSpec]
    public let pool: EndpointPool
    public let interval: Duration
    public let logger: Logger
    /// Told which endpoints left the pool, so what the routing core learned about them
    /// (prefix index entries, in-flight counts) goes with them.
    public let onLeave: @Sendable ([EndpointAddress]) -> Void

    public init(
        specs: [EndpointSpec], pool: EndpointPool, interval: Duration = .seconds(5), logger: Logger,
        onLeave: @escaping @Sendable ([EndpointAddress]) -> Void = { _ in }
    ) {
        self.specs = specs
        self.pool = pool
        self.interval = interval
        self.logger = logger
        self.onLeave = onLeave
    }

    /// Resolves once and installs the membership; called before serving starts.
    public func refresh(previous: [EndpointSpec: [EndpointAddress]] = [:]) async -> [EndpointSpec: [EndpointAddress]] {
        var resolved: [EndpointSpec: [EndpointAddress]] = [:]
        var members: [(address: EndpointAddress, baseURL: String, labels: [String: String])] = []
        var seen = Set<EndpointAddress>()
        for spec in specs {
            let addresses: [EndpointAddress]
            if spec.isAddress {
                addresses = [EndpointAddress(host: spec.host, port: spec.port)]
            } else {
                do {
                    addresses = try await Self.resolve(spec.host).map { EndpointAddress(host: $0, port: spec.port) }
                } catch {
                    logger.warning("endpoint resolution failed", metadata: ["endpoint": "\(spec)", "error": "\(error)"])
                    addresses = previous[spec] ?? []
                }
            }
            resolved[spec] = addresses
            for a in addresses where seen.insert(a).inserted {
                let host = a.host.contains(":") ? "[\(a.host)]" : a.host
                members.append((a, "\(spec.scheme)://\(host):\(a.port)", spec.labels))
            }
        }
        let left = pool.setMembers(members)
        if !left.isEmpty {
            logger.info("endpoints left", metadata: ["endpoints": "\(left.map(\.description))"])
            onLeave(left)
        }
        return resolved
    }

    public func run() async throws {
        guard specs.contains(where: { !$0.isAddress }) else {
            _ = await refresh()
            try? await gracefulShutdown()
            return
        }
        try await cancelWhenGracefulShutdown {
            var last = await refresh()
            while !Task.isCancelled {
                do { try await Task.sleep(for: interval) } catch { return }
                last = await refresh(previous: last)
            }
        }
    }

    /// IPv4 addresses of a name when it has any, else IPv6 ones (so `localhost` is one
    /// endpoint, not two paths to the same server).
    public static func resolve(_ name: String) async throws -> [String] {
        try await NIOThreadPool.singleton.runIfActive {
            var hints = addrinfo()
            hints.ai_family = AF_UNSPEC
            #if canImport(Glibc)
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            #else
            hints.ai_socktype = SOCK_STREAM
            #endif
            var result: UnsafeMutablePointer<addrinfo>?
            let rc = getaddrinfo(name, nil, &hints, &result)
            guard rc == 0, let first = result else {
                throw KVRouteError(code: .invalidConfiguration, message: "cannot resolve \(name): \(String(cString: gai_strerror(rc)))")
            }
            defer { freeaddrinfo(first) }
            var v4: [String] = [], v6: [String] = []
            var p: UnsafeMutablePointer<addrinfo>? = first
            while let ai = p {
                var buf = [CChar](repeating: 0, count: Int(NI_MAXHOST))
                if getnameinfo(ai.pointee.ai_addr, ai.pointee.ai_addrlen, &buf, socklen_t(buf.count), nil, 0, NI_NUMERICHOST) == 0 {
                    let s = String(cString: buf)
                    if ai.pointee.ai_family == AF_INET { if !v4.contains(s) { v4.append(s) } } else if !v6.contains(s) { v6.append(s) }
                }
                p = ai.pointee.ai_next
            }
            return (v4.isEmpty ? v6 : v4).sorted()
        }
    }
}
