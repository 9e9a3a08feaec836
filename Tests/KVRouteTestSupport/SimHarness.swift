import KVRouteEngineSim
import KVRouteSimServer
import Logging
import ServiceLifecycle

/// A fast engine configuration for tests: real block pool and scheduler, latencies scaled down.
public func testEngineConfiguration(numGPUBlocks: Int = 4096, maxNumSeqs: Int = 64) -> EngineConfiguration {
    EngineConfiguration(numGPUBlocks: numGPUBlocks, maxNumSeqs: maxNumSeqs, maxModelLen: 32_768, hashSeed: "0", defaultMaxTokens: 16)
}

public let quietLogger: Logger = {
    var l = Logger(label: "kvroute.test")
    l.logLevel = .critical
    return l
}()

/// Runs `body` against engines listening on free loopback ports, then shuts them down.
public func withSimCluster<T: Sendable>(
    engines: Int = 1, engine: EngineConfiguration = testEngineConfiguration(), timeScale: Double = 0.05,
    faults: FaultSettings = FaultSettings(), maxBodyBytes: Int = 1 << 20,
    _ body: @Sendable (SimCluster, [String]) async throws -> T
) async throws -> T {
    let cluster = try SimCluster(
        engines: engines, basePort: 0, engine: engine, timeScale: timeScale,
        server: .init(podName: "sim", maxBodyBytes: maxBodyBytes, faults: faults, enablePromptTokensDetails: true), logger: quietLogger)
    return try await withServices(cluster.services) {
        let ports = await cluster.waitUntilListening()
        return try await body(cluster, ports.map { "http://127.0.0.1:\($0)" })
    }
}

/// Runs services in a group around `body` and shuts them down gracefully afterwards,
/// whether `body` returned or threw.
public func withServices<T: Sendable>(_ services: [any Service], _ body: @Sendable () async throws -> T) async throws -> T {
    let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0) }, logger: quietLogger))
    return try await withThrowingTaskGroup(of: T?.self) { tasks in
        tasks.addTask {
            try await group.run()
            return nil
        }
        let result: Result<T, any Error>
        do { result = .success(try await body()) } catch { result = .failure(error) }
        await group.triggerGracefulShutdown()
        for try await _ in tasks {}
        return try result.get()
    }
}
