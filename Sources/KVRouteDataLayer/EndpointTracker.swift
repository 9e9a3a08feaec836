import AsyncHTTPClient
import KVRouteCore
import Logging
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

    public let pool = EndpointPool()
    public let client: HTTPClient
    public let discovery: EndpointDiscovery
    public let scraper: MetricsScraper
    public let prober: HealthProber

    /// `endpoints` are comma-separated lists of engine URLs; `onLeave` hears of endpoints that
    /// left the pool (the routing core forgets them).
    public init(
        endpoints: [String], intervals: Intervals, logger: Logger,
        onLeave: @escaping @Sendable ([EndpointAddress]) -> Void = { _ in }
    ) throws {
        let specs = try endpoints.flatMap { try EndpointSpec.parseList($0) }
        guard !specs.isEmpty else {
            throw KVRouteError(code: .invalidConfiguration, message: "no endpoints given (use --endpoints http://host:port,...)")
        }
        client = HTTPClientService.makeClient()
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
    public var services: [any Service] { [HTTPClientService(client: client), discovery, scraper, prober] }

    /// The models the engines report serving.
    public var knownModels: Set<String> { Set(pool.members.flatMap { $0.metrics?.modelNames ?? [] }) }
}
