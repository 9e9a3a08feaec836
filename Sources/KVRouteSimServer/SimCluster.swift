import Foundation
import KVRouteEngineSim
import KVRouteKVEvents
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Several simulated engines in one process, on consecutive ports (or free ports when the
/// base port is 0). Each engine is two Services: its step loop and its HTTP server. An
/// engine that cannot take its port ends the group with a ``ListenError``.
public final class SimCluster: Sendable {
    /// An engine that could not take its address (the port is in use, the host does not resolve).
    public struct ListenError: Error, Sendable, CustomStringConvertible {
        public var engine: Int
        public var host: String
        public var port: Int
        public var cause: any Error

        /// `address already in use`, rather than NIO's `bind(descriptor:ptr:bytes:): ... (errno: 98)`.
        public var reason: String {
            if let io = cause as? IOError { return String(cString: strerror(io.errnoCode)).lowercased() }
            return "\(cause)"
        }

        public var description: String { "cannot listen on \(host):\(port): \(reason)" }
    }

    public let servers: [SimEngineServer]
    public let services: [any Service]
    private let ports: PortBook
    private let ready: AsyncStream<Void>
    private let readyContinuation: AsyncStream<Void>.Continuation

    /// - Parameters:
    ///   - engines: how many engines.
    ///   - basePort: port of the first engine; engine i listens on basePort + i (0 = any free port).
    ///   - engine: the engine configuration (engine i's random seed is the configured random seed + i).
    ///   - kvEvents: vLLM's `--kv-events-config`; engine i publishes on its own port(s)
    ///     (see ``KVEventsConfig``).
    public init(
        engines: Int, host: String = "127.0.0.1", basePort: Int, engine: EngineConfiguration,
        timeScale: Double = 1, server: SimEngineServer.Configuration = .init(podName: "sim"),
        podNamePrefix: String = "sim", kvEvents: KVEventsConfig? = nil, logger: Logger
    ) throws(EngineError) {
        var servers: [SimEngineServer] = []
        var services: [any Service] = []
        let ports = PortBook(count: engines)
        let (ready, readyContinuation) = AsyncStream<Void>.makeStream()
        for i in 0..<engines {
            var config = engine
            config.seed = engine.seed &+ UInt64(i)
            if config.outputTokens.isEmpty { config.outputTokens = OutputVocabulary.tokens(for: server.template.tokenizer) }
            var sc = server
            sc.podName = engines == 1 && podNamePrefix != "sim" ? podNamePrefix : "\(podNamePrefix)-\(i)"
            var publisher: KVEventPublisher?
            if let kvEvents, kvEvents.publishes {
                let pc = try kvEvents.publisherConfiguration(engine: i, podName: sc.podName, model: config.model)
                do {
                    publisher = try KVEventPublisher(pc)
                } catch {
                    throw EngineError(code: .invalidConfiguration, message: "engine \(i): KV events on \(pc.endpoint): \(error.message)")
                }
                config.kvEventHashBytes = kvEvents.hashBytes
            }
            var sink: (@Sendable (KVEventBatch) -> Void)?
            if let publisher { sink = { batch in publisher.publish(batch) } }
            let runner = try EngineRunner(configuration: config, engineIndex: 0, timeScale: timeScale, kvEventSink: sink)
            let s = SimEngineServer(runner: runner, configuration: sc, kvEvents: publisher)
            var l = logger
            l[metadataKey: "engine"] = "\(sc.podName)"
            let port = basePort == 0 ? 0 : basePort + i
            let app = s.makeApplication(host: host, port: port, logger: l) { bound in
                if ports.set(i, bound) { readyContinuation.yield() }
            }
            servers.append(s)
            // Services stop in reverse order: the publisher after its engine.
            if let publisher { services.append(KVEventPublisherService(publisher: publisher)) }
            services.append(runner)
            services.append(EngineListener(server: app, engine: i, host: host, port: port, ports: ports))
        }
        self.servers = servers
        self.services = services
        self.ports = ports
        self.ready = ready
        self.readyContinuation = readyContinuation
    }

    /// Waits until every engine listens, then returns their ports in engine order.
    public func waitUntilListening() async -> [Int] {
        if let p = boundPorts { return p }
        for await _ in ready { break }
        return boundPorts ?? []
    }

    /// Ports once all engines listen.
    public var boundPorts: [Int]? {
        ports.all
    }
}

/// An engine's HTTP server; a failure before it listens names the engine and its address.
struct EngineListener: Service {
    let server: any Service
    let engine: Int
    let host: String
    let port: Int
    let ports: PortBook

    func run() async throws {
        do {
            try await server.run()
        } catch where !ports.isSet(engine) && !(error is CancellationError) {
            throw SimCluster.ListenError(engine: engine, host: host, port: port, cause: error)
        }
    }
}

/// Ports of a cluster's engines as they come up.
final class PortBook: Sendable {
    private let ports: Mutex<[Int?]>
    init(count: Int) { ports = Mutex(Array(repeating: nil, count: count)) }

    /// Records a bound port; true when it completes the set.
    func set(_ index: Int, _ port: Int) -> Bool {
        ports.withLock { p in
            p[index] = port
            return p.allSatisfy { $0 != nil }
        }
    }

    func isSet(_ index: Int) -> Bool {
        ports.withLock { $0[index] != nil }
    }

    var all: [Int]? {
        ports.withLock { p in p.allSatisfy { $0 != nil } ? p.map { $0! } : nil }
    }
}

/// An engine's KV event publisher as a Service: it sends what is queued and closes its
/// sockets on shutdown.
struct KVEventPublisherService: Service {
    let publisher: KVEventPublisher

    func run() async throws {
        await cancelWhenGracefulShutdown { await publisher.run() }
    }
}
