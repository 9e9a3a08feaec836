import AsyncHTTPClient
import KVRouteCore
import Logging
import NIOCore
import ServiceLifecycle

/// Scrapes every endpoint's `/metrics` every `interval` (50 ms by default, as llm-d does)
/// and feeds the pool. While no decision has read the pool for ``IdlePacing/quiet``, it
/// scrapes every ``IdlePacing/interval`` instead (500 ms: still inside the health filter's
/// one-second freshness limit, so the first request after a pause is routed on fresh-enough
/// data). The first decision after a pause wakes it: it scrapes at once (the decision does
/// not wait for it) and goes back to the fast pace, so the next decision sees fresh load. A failed or timed-out scrape marks the endpoint unhealthy at once; the
/// next good scrape brings it back. Samples an engine gets wrong (``EngineSampleRejection``)
/// are left out one by one, counted in ``rejections`` and logged once per endpoint and reason.
public struct MetricsScraper: Service {
    public let pool: EndpointPool
    public let client: HTTPClient
    public let interval: Duration
    public let timeout: TimeAmount
    public let logger: Logger
    public let idle: IdlePacing
    public let rejections = EngineSampleRejections()

    public init(
        pool: EndpointPool, client: HTTPClient, interval: Duration = .milliseconds(50), idle: IdlePacing = .init(interval: .milliseconds(500)),
        timeout: TimeAmount = .milliseconds(500), logger: Logger
    ) {
        self.pool = pool
        self.client = client
        self.interval = interval
        self.idle = idle
        self.timeout = timeout
        self.logger = logger
    }

    /// One round over every member, concurrently.
    public func scrapeOnce() async {
        await withTaskGroup(of: Void.self) { group in
            for m in pool.members {
                group.addTask {
                    let result: Result<EngineMetricsSnapshot, any Error>
                    do {
                        var req = HTTPClientRequest(url: m.baseURL + "/metrics")
                        req.method = .GET
                        let res = try await client.execute(req, timeout: timeout)
                        guard res.status == .ok else {
                            throw KVRouteError(code: .internalError, message: "GET /metrics answered \(res.status.code)")
                        }
                        let body = try await res.body.collect(upTo: 16 << 20)
                        result = .success(EngineMetricsSnapshot.parse(String(buffer: body)))
                    } catch {
                        result = .failure(error)
                    }
                    if case .failure(let e) = result, pool.member(m.address)?.scrapeFailures == 0 {
                        logger.warning("metrics scrape failed", metadata: ["endpoint": "\(m.address)", "error": "\(e)"])
                    }
                    if case .success(let s) = result {
                        for reason in rejections.record(s.rejected, from: m.address) {
                            logger.warning("engine metrics samples rejected", metadata: [
                                "endpoint": "\(m.address)", "reason": "\(reason.rawValue)", "samples": "\(s.rejected[reason] ?? 0)",
                            ])
                        }
                    }
                    pool.recordScrape(m.address, result)
                }
            }
        }
        rejections.retain(endpoints: Set(pool.members.map(\.address)))
    }

    public func run() async throws {
        await idle.run(pool, busy: interval) { await scrapeOnce() }
    }
}

/// How a loop over the engines slows down while nothing is routed: after `quiet` without a
/// decision, it runs every `interval` (never faster than its busy pace).
public struct IdlePacing: Sendable {
    public var quiet: Duration
    public var interval: Duration
    public init(quiet: Duration = .seconds(2), interval: Duration) {
        self.quiet = quiet
        self.interval = interval
    }

    public func pace(_ pool: EndpointPool, busy: Duration) -> Duration {
        pool.isIdle(for: quiet) ? max(busy, interval) : busy
    }

    /// Runs `body` at the start of every ``pace(_:busy:)`` until graceful shutdown (or
    /// cancellation). A wait at the idle pace ends early when a decision reads the pool: the
    /// next round starts at once, and the busy pace is back from then on.
    public func run(_ pool: EndpointPool, busy: Duration, _ body: @escaping @Sendable () async -> Void) async {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let started = ContinuousClock.now
                await body()
                let reads = pool.readCount
                let pace = pace(pool, busy: busy)
                guard pace > busy else {
                    do { try await Task.sleep(until: started + pace, clock: .continuous) } catch { return }
                    continue
                }
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { try? await Task.sleep(until: started + pace, clock: .continuous) }
                    group.addTask { await pool.nextRead(after: reads) }
                    await group.next()
                    group.cancelAll()
                }
            }
        }
    }
}

/// Probes every endpoint's `/health`; a failure marks it unhealthy at once. While nothing
/// is routed it probes once a second (``IdlePacing``).
public struct HealthProber: Service {
    public let pool: EndpointPool
    public let client: HTTPClient
    public let interval: Duration
    public let idle: IdlePacing
    public let timeout: TimeAmount
    public let logger: Logger

    public init(
        pool: EndpointPool, client: HTTPClient, interval: Duration = .milliseconds(250), idle: IdlePacing = .init(interval: .seconds(1)),
        timeout: TimeAmount = .milliseconds(500), logger: Logger
    ) {
        self.pool = pool
        self.client = client
        self.interval = interval
        self.idle = idle
        self.timeout = timeout
        self.logger = logger
    }

    public func probeOnce() async {
        await withTaskGroup(of: Void.self) { group in
            for m in pool.members {
                group.addTask {
                    do {
                        let res = try await client.execute(HTTPClientRequest(url: m.baseURL + "/health"), timeout: timeout)
                        _ = try? await res.body.collect(upTo: 1 << 16)
                        pool.recordProbe(m.address, ok: res.status == .ok, error: res.status == .ok ? nil : "health answered \(res.status.code)")
                    } catch {
                        pool.recordProbe(m.address, ok: false, error: "\(error)")
                    }
                }
            }
        }
    }

    public func run() async throws {
        await idle.run(pool, busy: interval) { await probeOnce() }
    }
}

/// Owns an HTTP client for the process and shuts it down after everything else stopped.
public struct HTTPClientService: Service {
    public let client: HTTPClient

    public init(client: HTTPClient) { self.client = client }

    public static func makeClient(connectTimeout: TimeAmount = .milliseconds(500), poolSize: Int = 256) -> HTTPClient {
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: connectTimeout, read: nil)
        config.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: poolSize)
        config.httpVersion = .http1Only
        config.decompression = .disabled
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    public func run() async throws {
        try? await gracefulShutdown()
        try await client.shutdown()
    }
}
