/// Where an engine listens: `ip:port`, as in `x-gateway-destination-endpoint`.
public struct EndpointAddress: Hashable, Sendable, CustomStringConvertible, Comparable {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` or `[v6]:port`.
    public init?(_ text: some StringProtocol) {
        let s = Substring(text)
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]"), s[s.index(after: close)...].hasPrefix(":"),
                  let port = Int(s[s.index(close, offsetBy: 2)...]) else { return nil }
            self.init(host: String(s[s.index(after: s.startIndex)..<close]), port: port)
        } else {
            guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]) else { return nil }
            let host = s[..<colon]
            guard !host.isEmpty, !host.contains(":") else { return nil }
            self.init(host: String(host), port: port)
        }
        guard (1...65535).contains(port) else { return nil }
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    public static func < (a: EndpointAddress, b: EndpointAddress) -> Bool {
        (a.host, a.port) < (b.host, b.port)
    }
}

/// What the router knows about one endpoint at decision time.
public struct EndpointSnapshot: Sendable {
    public var address: EndpointAddress
    public var labels: [String: String]
    /// `vllm:num_requests_waiting`.
    public var waitingRequests: Int
    /// `vllm:num_requests_running`.
    public var runningRequests: Int
    /// `vllm:kv_cache_usage_perc`, 0…1.
    public var kvCacheUsage: Double
    /// Requests the router itself has in flight there (informational; the Scheduler keeps
    /// the authoritative count at pick time).
    public var inFlight: Int
    public var healthy: Bool
    /// Seconds since the last successful metrics scrape; nil when never scraped.
    public var metricsAge: Double?
    public var maxNumSeqs: Int?

    public init(
        address: EndpointAddress, labels: [String: String] = [:], waitingRequests: Int = 0, runningRequests: Int = 0,
        kvCacheUsage: Double = 0, inFlight: Int = 0, healthy: Bool = true, metricsAge: Double? = 0, maxNumSeqs: Int? = nil
    ) {
        self.address = address
        self.labels = labels
        self.waitingRequests = waitingRequests
        self.runningRequests = runningRequests
        self.kvCacheUsage = kvCacheUsage
        self.inFlight = inFlight
        self.healthy = healthy
        self.metricsAge = metricsAge
        self.maxNumSeqs = maxNumSeqs
    }
}
