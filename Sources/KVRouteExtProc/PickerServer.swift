import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Hummingbird
import KVRouteCore
import KVRouteDataLayer
import KVRouteRouting
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

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

    /// The ports the three servers listen on.
    public struct ListeningPorts: Sendable, Equatable {
        public var grpc: Int
        public var health: Int
        public var metrics: Int
    }

    public let configuration: Configuration
    public let metrics = EPPMetrics(poolName: "kvroute")
    let tracker: EndpointTracker
    let service: ExtProcService
    let logger: Logger
    /// The routing seam the ext_proc stream decides through (its Scheduler's ledger included).
    public var router: RequestRouter { service.router }
    /// Bound ports of the ext_proc, health and metrics servers, in that order.
    private let bound = Mutex<[Int?]>([nil, nil, nil])
    private let ready: AsyncStream<Void>
    private let readyContinuation: AsyncStream<Void>.Continuation

    public init(configuration: Configuration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        let (router, tracker) = try RequestRouter.tracking(
            endpoints: configuration.endpoints,
            intervals: .init(scrape: configuration.scrapeInterval, probe: configuration.probeInterval, discovery: configuration.discoveryInterval),
            configuration: .init(
                pickerConfig: configuration.pickerConfig, ringSize: 4096, seed: configuration.seed,
                maxAttempts: configuration.options.maxAttempts),
            metrics: metrics.picker, logger: logger)
        self.tracker = tracker
        service = ExtProcService(router: router, metrics: metrics, logger: logger, options: configuration.options)
        (ready, readyContinuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Waits until the ext_proc, health and metrics servers all listen, then returns their ports
    /// (the configured ones if the wait is cancelled first). A server that cannot take its port
    /// ends the group with a ``ListenError`` instead.
    public func waitUntilListening() async -> ListeningPorts {
        if let p = listeningPorts { return p }
        for await _ in ready { break }
        return listeningPorts ?? ListeningPorts(grpc: configuration.grpcPort, health: configuration.healthPort, metrics: configuration.metricsPort)
    }

    /// The ports once all three servers listen.
    public var listeningPorts: ListeningPorts? {
        bound.withLock { b in
            guard let g = b[0], let h = b[1], let m = b[2] else { return nil }
            return ListeningPorts(grpc: g, health: h, metrics: m)
        }
    }

    private func listening(_ index: Int, _ port: Int) {
        let all = bound.withLock { b in
            b[index] = port
            return b.allSatisfy { $0 != nil }
        }
        if all { readyContinuation.yield() }
    }

    private func isListening(_ index: Int) -> Bool {
        bound.withLock { $0[index] != nil }
    }

    public var pool: EndpointPool { tracker.pool }

    public func warmUp() async {
        await tracker.warmUp()
        refreshPoolMetrics()
    }

    func refreshPoolMetrics() { metrics.refresh(from: tracker, scheduler: service.router.scheduler) }

    func security() throws -> HTTP2ServerTransport.Posix.TransportSecurity {
        guard let cert = configuration.certificatePath, let key = configuration.keyPath else { return .plaintext }
        return .tls(certificateChain: [.file(path: cert, format: .pem)], privateKey: .file(path: key, format: .pem))
    }

    /// Every Service, in start order (stopped in reverse: servers drain first). Call it once:
    /// the servers it makes report to ``waitUntilListening()``.
    public func services() throws -> [any Service] {
        let host = configuration.host
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
        let metricsApp = Application(
            router: router, configuration: .init(address: .hostname(host, port: configuration.metricsPort)),
            onServerRunning: { channel in self.listening(2, channel.localAddress?.port ?? self.configuration.metricsPort) },
            logger: logger)
        let metricsServer = ListeningService(metricsApp, name: "metrics", host: host, port: configuration.metricsPort) { self.isListening(2) }
        let healthServer = GRPCServerService(server: health, name: "gRPC health", host: host, port: configuration.healthPort,
                                             onListening: { self.listening(1, $0) }, isListening: { self.isListening(1) })
        let extProcServer = GRPCServerService(server: extProc, name: "ext_proc gRPC", host: host, port: configuration.grpcPort,
                                              onListening: { self.listening(0, $0) }, isListening: { self.isListening(0) })
        return tracker.services + [PickerMetricsRefresher { self.refreshPoolMetrics() }, metricsServer, healthServer, extProcServer]
    }
}

/// Runs a gRPC server until graceful shutdown, then lets its open streams drain. It reports
/// its port once it listens; a failure before that is a ``ListenError`` naming its address.
struct GRPCServerService: Service {
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    let name: String
    let host: String
    let port: Int
    let onListening: @Sendable (Int) -> Void
    let isListening: @Sendable () -> Bool

    func run() async throws {
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    // Resolves once bound, or fails when the transport closed without listening.
                    guard let address = try? await server.transport.listeningAddress else { return }
                    onListening(address.ipv4?.port ?? address.ipv6?.port ?? port)
                }
                group.addTask {
                    try await withGracefulShutdownHandler {
                        try await server.serve()
                    } onGracefulShutdown: {
                        server.beginGracefulShutdown()
                    }
                }
                try await group.waitForAll()
            }
        } catch where !isListening() && !(error is CancellationError) {
            let cause = (error as? RuntimeError)?.cause ?? error
            throw ListenError(server: name, host: host, port: port, cause: cause)
        }
    }
}
