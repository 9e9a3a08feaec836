import AsyncHTTPClient
import KVRouteCore
import Logging
import NIOCore
import ServiceLifecycle

/// What every front door needs to know its engines: the pool, fed by discovery, metrics
/// scrapes and health probes over one HTTP client. The gateway and the ext_proc picker each
/// own one.
public final class EndpointTracker: Sendable {
    public struct Intervals: Sendable {
        public var scrape: Duration
        public var probe: Duration
        public var discovery: Duration
        public init(scrape: Duration = .milliseconds(50), probe: Duration = .milliseconds(250), discovery: Duration = .seconds(5)) {
            self.scrape = scrape
            self.probe = probe
            self.discovery = discovery
        }
    }

    /// The proxy's connections to the engines. Apart from ``client`` so that scrapes and
    /// probes never queue behind requests.
    public struct ProxySettings: Sendable {
        /// Connections to one engine. Requests above it wait for a free connection as long as
        /// `connectTimeout`, then fail as never sent.
        public var connectionsPerEndpoint: Int
        public var connectTimeout: Duration
        public init(connectionsPerEndpoint: Int = 1024, connectTimeout: Duration = .seconds(1)) {
            self.connectionsPerEndpoint = connectionsPerEndpoint
            self.connectTimeout = connectTimeout
        }
    }

    public let pool = EndpointPool()
    /// Scrapes and probes.
    public let client: HTTPClient
    /// Proxied requests.
    public let proxyClient: HTTPClient
    public let discovery: EndpointDiscovery
    public let scraper: MetricsScraper
    public let prober: HealthProber

    /// `endpoints` are comma-separated lists of engine URLs; `onLeave` hears of endpoints that
    /// left the pool (the routing core forgets them).
    public init(
        endpoints: [String], intervals: Intervals, proxy: ProxySettings = .init(), logger: Logger,
        onLeave: @escaping @Sendable ([EndpointAddress]) -> Void = { _ in }
    ) throws {
        let specs = try endpoints.flatMap { try EndpointSpec.parseList($0) }
        guard !specs.isEmpty else {
            throw KVRouteError(code: .invalidConfiguration, message: "no endpoints given (use --endpoints http://host:port,...)")
        }
        client = HTTPClientService.makeClient(poolSize: 8)
        proxyClient = Self.makeProxyClient(proxy)
        discovery = EndpointDiscovery(specs: specs, pool: pool, interval: intervals.discovery, logger: logger, onLeave: onLeave)
        scraper = MetricsScraper(pool: pool, client: client, interval: intervals.scrape, logger: logger)
        prober = HealthProber(pool: pool, client: client, interval: intervals.probe, logger: logger)
    }

    /// Learns the endpoints and their state once, so the first request is routed with data.
    public func warmUp() async {
        _ = await discovery.refresh()
        async let s: Void = scraper.scrapeOnce()
        async let p: Void = prober.probeOnce()
        _ = await (s, p)
    }

    /// The client (shut down last), discovery, scraping and probing.
    public var services: [any Service] {
        [HTTPClientService(client: client), HTTPClientService(client: proxyClient), discovery, scraper, prober]
    }

    /// No read timeout (the proxy bounds each read itself: a non-streaming answer may take
    /// minutes before its first byte). A failed connect fails the waiting requests at once
    /// instead of retrying until the connect timeout, so they move to another engine
    /// quickly. Idle connections are dropped after 4 s, before vLLM's 5 s keep-alive, so a
    /// request is seldom written to a connection the engine is just closing (such a request
    /// fails as possibly sent, and is not retried).
    static func makeProxyClient(_ settings: ProxySettings) -> HTTPClient {
        var config = HTTPClient.Configuration()
        let connect = settings.connectTimeout.components
        config.timeout = .init(connect: .nanoseconds(connect.seconds * 1_000_000_000 + connect.attoseconds / 1_000_000_000), read: nil)
        config.connectionPool = .init(idleTimeout: .seconds(4), concurrentHTTP1ConnectionsPerHostSoftLimit: max(1, settings.connectionsPerEndpoint))
        config.connectionPool.retryConnectionEstablishment = false
        config.httpVersion = .http1Only
        config.decompression = .disabled
        config.redirectConfiguration = .disallow
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    /// The models the engines report serving.
    public var knownModels: Set<String> { Set(pool.members.flatMap { $0.metrics?.modelNames ?? [] }) }
}
