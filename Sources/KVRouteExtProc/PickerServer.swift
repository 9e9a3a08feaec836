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
        public var probeInterval: Duration = .milliseconds(250)
        public var discoveryInterval: Duration = .seconds(5)
        public var seed: UInt64?
        public var options = ExtProcService.Options()
        public init() {}
    }

    public let configuration: Configuration
    public let metrics = EPPMetrics(poolName: "kvroute")
    let tracker: EndpointTracker
    let service: ExtProcService
    let logger: Logger

    public init(configuration: Configuration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        let picker = try RoutingPolicy(mode: .picker, pickerConfig: configuration.pickerConfig, ringSize: 4096, seed: configuration.seed)
        tracker = try EndpointTracker(
            endpoints: configuration.endpoints,
            intervals: .init(scrape: configuration.scrapeInterval, probe: configuration.probeInterval, discovery: configuration.discoveryInterval),
            logger: logger
        ) { left in
            for endpoint in left { picker.scheduler?.forget(endpoint: endpoint) }
        }
        service = ExtProcService(
            pool: tracker.pool,
            picker: picker,
            ring: try RoutingPolicy(mode: .consistentHash, pickerConfig: configuration.pickerConfig, ringSize: 4096, seed: configuration.seed),
            metrics: metrics, logger: logger, options: configuration.options)
    }

    public var pool: EndpointPool { tracker.pool }

    public func warmUp() async {
        await tracker.warmUp()
        refreshPoolMetrics()
    }

    func refreshPoolMetrics() { metrics.refresh(from: tracker, scheduler: service.picker.scheduler) }

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
            self.refreshPoolMetrics()
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: self.metrics.render())))
        }
        let metricsApp = Application(router: router, configuration: .init(address: .hostname(configuration.host, port: configuration.metricsPort)), logger: logger)
        return tracker.services + [PickerMetricsRefresher { self.refreshPoolMetrics() }, metricsApp,
                                   GRPCServerService(server: health), GRPCServerService(server: extProc)]
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
