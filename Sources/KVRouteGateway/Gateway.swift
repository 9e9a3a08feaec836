import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import KVRouteCore
import KVRouteDataLayer
import KVRouteRouting
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// The OpenAI-compatible gateway: OpenAI HTTP translated onto a ``RequestRouter``, proxying to
/// engines with AsyncHTTPClient. Its long-running parts (discovery, metrics scraping, health probing,
/// the HTTP server, the client) are Services for one ServiceGroup.
public final class Gateway: Sendable {
    public let configuration: GatewayConfiguration
    public let tracker: EndpointTracker
    public let router: RequestRouter
    public let metrics: GatewayMetrics
    public let dashboard = DashboardState()
    let logger: Logger
    private let port = Mutex<Int?>(nil)
    private let listening: AsyncStream<Int>
    private let listeningContinuation: AsyncStream<Int>.Continuation

    static let destinationHeaderPrefix = "x-gateway-destination-endpoint"
    public static let upstreamHostHeader = HTTPField.Name("x-upstream-host")!
    public static let explainRequestHeader = HTTPField.Name("x-kvroute-explain")!
    public static let decisionHeader = HTTPField.Name("x-kvroute-decision")!
    static let requestIDHeader = HTTPField.Name("x-request-id")!
    /// Names the engine that served an answer; the client's next request may send it back.
    public static let sessionTokenHeader = HTTPField.Name(SessionKey.tokenHeader)!

    public init(configuration: GatewayConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        metrics = GatewayMetrics(poolName: "kvroute")
        (router, tracker) = try RequestRouter.tracking(
            endpoints: configuration.endpoints,
            intervals: .init(scrape: configuration.scrapeInterval, probe: configuration.probeInterval, discovery: configuration.discoveryInterval),
            proxy: .init(connectionsPerEndpoint: configuration.upstreamConnectionsPerEndpoint, connectTimeout: configuration.upstreamConnectTimeout),
            configuration: .init(
                pickerConfig: configuration.pickerConfig, ringSize: configuration.ringSize,
                seed: configuration.seed, maxAttempts: configuration.maxAttempts),
            metrics: metrics.picker, logger: logger)
        (listening, listeningContinuation) = AsyncStream<Int>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Learns the endpoints and their state once, so the first request is routed with data.
    public func warmUp() async {
        await tracker.warmUp()
        refreshPoolMetrics()
    }

    public var pool: EndpointPool { tracker.pool }
    /// The proxy's client (scrapes and probes use ``EndpointTracker/client``).
    var client: HTTPClient { tracker.proxyClient }

    /// Every Service of the gateway, in start order (stopped in reverse). A port it cannot
    /// take ends the group with a ``ListenError``.
    public var services: [any Service] {
        let name = "gateway (\(configuration.pickerConfig.name))"
        let server = ListeningService(makeApplication(), name: name, host: configuration.host, port: configuration.port) {
            self.port.withLock { $0 != nil }
        }
        return tracker.services + [PickerMetricsRefresher { self.refreshPoolMetrics() }, server]
    }

    /// The port once the server listens.
    public func waitUntilListening() async -> Int {
        if let p = port.withLock({ $0 }) { return p }
        for await p in listening { return p }
        return configuration.port
    }

    func makeApplication() -> some ApplicationProtocol {
        Application(
            router: makeRouter(),
            server: ClientTimeoutChannel.builder(configuration.clientTimeouts),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
            onServerRunning: { [self] channel in
                let p = channel.localAddress?.port ?? configuration.port
                port.withLock { $0 = p }
                listeningContinuation.yield(p)
            },
            logger: logger)
    }

    public func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: GatewayErrorMiddleware())
        router.post("/v1/chat/completions") { req, ctx in try await self.complete(req, ctx, kind: .chatCompletions) }
        router.post("/v1/completions") { req, ctx in try await self.complete(req, ctx, kind: .completions) }
        router.get("/v1/models") { req, ctx in try await self.models(req, ctx) }
        router.get("/health") { _, _ -> Response in
            let healthy = self.pool.healthyCount
            let body = "{\"status\":\"\(healthy > 0 ? "ok" : "unavailable")\",\"healthy_endpoints\":\(healthy),\"endpoints\":\(self.pool.members.count)}"
            return Response(status: healthy > 0 ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        addDashboardRoutes(router)
        router.get("/metrics") { _, _ in
            self.refreshPoolMetrics()
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: self.metrics.render())))
        }
        return router
    }

    func refreshPoolMetrics() { metrics.refresh(from: tracker, scheduler: router.scheduler) }
}
