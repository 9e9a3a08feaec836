import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Hummingbird
import KVRouteCore
import KVRouteDataLayer
import KVRouteGateway
import Logging
import NIOCore
import ServiceLifecycle

/// `kvroute epp`: the ext_proc gRPC service, gRPC health, and Prometheus metrics over the
/// same data layer the gateway uses, as Services.
public final class PickerServer: Sendable {
    public struct Configuration: Sendable {
        public var host = "0.0.0.0"
        public var grpcPort = 9002
        public var healthPort = 9003
        public var metricsPort = 9090
        public var endpoints: [String] = []
        public var pickerConfig: EndpointPickerConfig = .kvrouteDefault
        public var certificatePath: String?
        public var keyPath: String?
        public var scrapeInterval: Duration = .milliseconds(50)
        public var seed: UInt64?
        public init() {}
    }

    public let configuration: Configuration
    public let pool = EndpointPool()
    public let metrics = GatewayMetrics(poolName: "kvroute")
    let discovery: EndpointDiscovery
    let scraper: MetricsScraper
    let prober: HealthProber
    let client: HTTPClientServiceClient
    let service: ExtProcService
    let logger: Logger

    public init(configuration: Configuration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        let specs = try configuration.endpoints.flatMap { try EndpointSpec.parseList($0) }
        guard !specs.isEmpty else {
            throw KVRouteError(code: .invalidConfiguration, message: "no endpoints given (use --endpoints http://host:port,...)")
        }
        client = HTTPClientServiceClient()
        discovery = EndpointDiscovery(specs: specs, pool: pool, logger: logger)
        scraper = MetricsScraper(pool: pool, client: client.client, interval: configuration.scrapeInterval, logger: logger)
        prober = HealthProber(pool: pool, client: client.client, logger: logger)
        service = ExtProcService(
            pool: pool,
            picker: try RoutingPolicy(mode: .picker, pickerConfig: configuration.pickerConfig, ringSize: 4096, seed: configuration.seed),
            ring: try RoutingPolicy(mode: .consistentHash, pickerConfig: configuration.pickerConfig, ringSize: 4096, seed: configuration.seed),
            metrics: metrics, logger: logger)
    }

    public func warmUp() async {
        _ = await discovery.refresh()
        async let s: Void = scraper.scrapeOnce()
        async let p: Void = prober.probeOnce()
        _ = await (s, p)
    }

    func security() throws -> HTTP2ServerTransport.Posix.TransportSecurity {
        guard let cert = configuration.certificatePath, let key = configuration.keyPath else { return .plaintext }
        return .tls(certificateChain: [.file(path: cert, format: .pem)], privateKey: .file(path: key, format: .pem))
    }

    /// Every Service, in start order (stopped in reverse: servers drain first).
    public func services() throws -> [any Service] {
        let extProc = GRPCServer(
            transport: .http2NIOPosix(address: .ipv4(host: configuration.host, port: configuration.grpcPort), transportSecurity: try security()),
            services: [service])
        let health = GRPCServer(
            transport: .http2NIOPosix(address: .ipv4(host: configuration.host, port: configuration.healthPort), transportSecurity: .plaintext),
            services: [HealthService(pool: pool)])
        let router = Router()
        router.get("/metrics") { _, _ in
            self.metrics.updatePool(ready: self.pool.healthyCount, scheduler: self.service.picker.scheduler)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: self.metrics.render())))
        }
        let metricsApp = Application(router: router, configuration: .init(address: .hostname(configuration.host, port: configuration.metricsPort)), logger: logger)
        return [client, discovery, scraper, prober, metricsApp, GRPCServerService(server: health), GRPCServerService(server: extProc)]
    }
}

/// Runs a gRPC server until graceful shutdown, then lets its open streams drain.
struct GRPCServerService: Service {
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.serve()
        } onGracefulShutdown: {
            server.beginGracefulShutdown()
        }
    }
}

/// The HTTP client for scrapes and probes, shut down last.
struct HTTPClientServiceClient: Service {
    let client = HTTPClientService.makeClient()
    func run() async throws { try await HTTPClientService(client: client).run() }
}
