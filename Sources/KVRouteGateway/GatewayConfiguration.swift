import KVRouteCore

/// Everything that shapes one gateway.
public struct GatewayConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var endpoints: [String]
    public var mode: RoutingMode
    /// The picker's configuration (`kvrouteDefault` when none is given).
    public var pickerConfig: EndpointPickerConfig
    /// Largest accepted request body, bytes.
    public var maxBodyBytes: Int
    /// How many endpoints one request may try before the first response byte.
    public var maxAttempts: Int
    /// Ring size of the consistent-hash fallback.
    public var ringSize: Int
    /// Metrics scrape interval (llm-d uses 50 ms).
    public var scrapeInterval: Duration
    /// Health probe interval.
    public var probeInterval: Duration
    /// DNS re-resolution interval for endpoint names.
    public var discoveryInterval: Duration
    /// Upper bound on a whole upstream exchange, seconds.
    public var upstreamTimeout: Double
    /// Send the decision explanation header on every response, not only when asked.
    public var alwaysExplain: Bool
    /// Seed of the picker's tie-breaks and the random modes.
    public var seed: UInt64?

    public init(
        host: String = "127.0.0.1", port: Int = 18080, endpoints: [String], mode: RoutingMode = .picker,
        pickerConfig: EndpointPickerConfig = .kvrouteDefault, maxBodyBytes: Int = 16 << 20, maxAttempts: Int = 3,
        ringSize: Int = 4096, scrapeInterval: Duration = .milliseconds(50), probeInterval: Duration = .milliseconds(250),
        discoveryInterval: Duration = .seconds(5), upstreamTimeout: Double = 600, alwaysExplain: Bool = false, seed: UInt64? = nil
    ) {
        self.host = host
        self.port = port
        self.endpoints = endpoints
        self.mode = mode
        self.pickerConfig = pickerConfig
        self.maxBodyBytes = maxBodyBytes
        self.maxAttempts = maxAttempts
        self.ringSize = ringSize
        self.scrapeInterval = scrapeInterval
        self.probeInterval = probeInterval
        self.discoveryInterval = discoveryInterval
        self.upstreamTimeout = upstreamTimeout
        self.alwaysExplain = alwaysExplain
        self.seed = seed
    }
}
