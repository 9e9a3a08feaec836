import KVRouteCore

/// Everything that shapes one gateway.
public struct GatewayConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var endpoints: [String]
    /// The routing configuration: a built-in (`kvrouteDefault`, `roundRobin`,
    /// `consistentHash`…) or a file.
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
    /// Upper bound on a whole upstream exchange (every attempt, the response head and the
    /// whole body), seconds, counted from the request's arrival.
    public var upstreamTimeout: Double
    /// Longest wait for the next byte of an upstream response body once its head arrived:
    /// an engine silent for longer is abandoned (a stream ends with an error event, a plain
    /// answer becomes a 504).
    public var upstreamIdleTimeout: Duration
    /// Largest non-streaming upstream answer, bytes. Non-streaming answers are read whole
    /// before the client sees a byte, so an answer cut short becomes a clean 502.
    public var maxResponseBytes: Int
    /// Connections the proxy may open to one engine; requests above it wait for a free one
    /// as long as the connect timeout, then count as never sent (and try another engine).
    public var upstreamConnectionsPerEndpoint: Int
    /// Time allowed to open a connection to an engine.
    public var upstreamConnectTimeout: Duration
    /// The client side: how long an idle keep-alive connection stays open, how long a
    /// request head may take once its first byte arrived, how long a request body may take.
    public var clientTimeouts: ClientTimeouts
    /// The operator's secret for explanations: a request whose `x-kvroute-explain` header
    /// equals it gets the `x-kvroute-decision` header, and `/dashboard` answers only when
    /// given it. nil: no request gets an explanation and the dashboard is off (the
    /// per-endpoint prefix scores would tell any client what other clients sent).
    public var explainSecret: String?
    /// Seed of the picker's tie-breaks and the random modes.
    public var seed: UInt64?

    public init(
        host: String = "127.0.0.1", port: Int = 18080, endpoints: [String],
        pickerConfig: EndpointPickerConfig = .kvrouteDefault, maxBodyBytes: Int = 16 << 20, maxAttempts: Int = 3,
        ringSize: Int = 4096, scrapeInterval: Duration = .milliseconds(50), probeInterval: Duration = .milliseconds(250),
        discoveryInterval: Duration = .seconds(5), upstreamTimeout: Double = 600, upstreamIdleTimeout: Duration = .seconds(60),
        maxResponseBytes: Int = 32 << 20, upstreamConnectionsPerEndpoint: Int = 1024, upstreamConnectTimeout: Duration = .seconds(1),
        clientTimeouts: ClientTimeouts = .init(), explainSecret: String? = nil, seed: UInt64? = nil
    ) {
        self.host = host
        self.port = port
        self.endpoints = endpoints
        self.pickerConfig = pickerConfig
        self.maxBodyBytes = maxBodyBytes
        self.maxAttempts = maxAttempts
        self.ringSize = ringSize
        self.scrapeInterval = scrapeInterval
        self.probeInterval = probeInterval
        self.discoveryInterval = discoveryInterval
        self.upstreamTimeout = upstreamTimeout
        self.upstreamIdleTimeout = upstreamIdleTimeout
        self.maxResponseBytes = maxResponseBytes
        self.upstreamConnectionsPerEndpoint = upstreamConnectionsPerEndpoint
        self.upstreamConnectTimeout = upstreamConnectTimeout
        self.clientTimeouts = clientTimeouts
        self.explainSecret = explainSecret.flatMap { $0.isEmpty ? nil : $0 }
        self.seed = seed
    }
}

/// Limits on how slowly a client may talk, so half-sent requests cannot hold connections.
public struct ClientTimeouts: Sendable {
    /// A keep-alive connection with no request for this long is closed.
    public var idle: Duration
    /// A request head must be complete this long after its first byte.
    public var head: Duration
    /// A request body must be complete this long after its head (then 408 and close).
    public var body: Duration

    public init(idle: Duration = .seconds(60), head: Duration = .seconds(10), body: Duration = .seconds(60)) {
        self.idle = idle
        self.head = head
        self.body = body
    }
}
