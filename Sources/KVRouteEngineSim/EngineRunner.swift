import Foundation
import KVRouteKVEvents
import ServiceLifecycle
import Synchronization

/// What a client of a real-time engine receives for its request.
public enum EngineEvent: Sendable {
    /// A generated token; `first` marks the end of prefill.
    case token(UInt32, first: Bool)
    /// The request ended; no event follows.
    case finished(FinishedRequest)
}

/// Runs an ``EngineCore`` in real time: each step sleeps for its modelled duration × the
/// time scale, then delivers the step's tokens to the waiting requests. Engine time is wall
/// time divided by the time scale, so metrics report the modelled latencies; a time scale
/// of 0 runs steps back to back. A step's metrics are published when its time has passed,
/// just before its tokens are delivered, as vLLM publishes scheduler stats after a step.
public final class EngineRunner: Service, Sendable {
    struct State: Sendable {
        var core: EngineCore
        var streams: [EngineRequestID: AsyncStream<EngineEvent>.Continuation] = [:]
        var virtualNow: Double = 0
        var stopped = false
    }

    public let configuration: EngineConfiguration
    public let metrics: EngineMetrics
    public let timeScale: Double
    private let state: Mutex<State>
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation
    private let start = ContinuousClock.now
    private let kvEventSink: (@Sendable (KVEventBatch) -> Void)?

    /// - Parameter kvEventSink: receives one batch per step that changed the cache (and one
    ///   per prefix-cache reset), in order, while the engine's lock is held: it must only
    ///   queue (``KVEventPublisher/publish(_:)`` does). Setting it turns event recording on.
    public init(
        configuration: EngineConfiguration, engineIndex: Int = 0, timeScale: Double = 1,
        kvEventSink: (@Sendable (KVEventBatch) -> Void)? = nil
    ) throws(EngineError) {
        guard timeScale >= 0, timeScale.isFinite else {
            throw EngineError(code: .invalidConfiguration, message: "time scale must be a non-negative number, got \(timeScale)")
        }
        var configuration = configuration
        if kvEventSink != nil { configuration.recordKVEvents = true }
        self.configuration = configuration
        self.kvEventSink = kvEventSink
        self.metrics = EngineMetrics(configuration: configuration, engineIndex: engineIndex)
        self.timeScale = timeScale
        var core = try EngineCore(configuration: configuration, metrics: metrics)
        core.defersMetrics = true
        self.state = Mutex(State(core: core))
        (wakeups, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues a request; its events arrive on the returned stream. Dropping the stream
    /// (client gone) aborts the request and frees its blocks.
    public func submit(_ request: EngineRequest) throws(EngineError) -> AsyncStream<EngineEvent> {
        let (stream, continuation) = AsyncStream<EngineEvent>.makeStream()
        let id: EngineRequestID = try state.withLock { (s: inout State) throws(EngineError) -> EngineRequestID in
            guard !s.stopped else { throw EngineError(code: .shuttingDown, message: "the engine is shutting down") }
            s.virtualNow = max(s.virtualNow, wallNow())
            let id = try s.core.add(request, at: s.virtualNow)
            s.streams[id] = continuation
            return id
        }
        continuation.onTermination = { [weak self] reason in
            if case .cancelled = reason { self?.abort(id) }
        }
        wake.yield()
        return stream
    }

    /// Aborts a request if it is still in the engine.
    public func abort(_ id: EngineRequestID) {
        let c = state.withLock { s -> AsyncStream<EngineEvent>.Continuation? in
            s.core.abort(id)
            return s.streams.removeValue(forKey: id)
        }
        c?.finish()
    }

    /// vLLM's `reset_prefix_cache`: false (and nothing changes) while requests hold blocks,
    /// unless `resetRunningRequests` preempts them first.
    @discardableResult
    public func resetPrefixCache(resetRunningRequests: Bool = false) -> Bool {
        let done = state.withLock {
            let done = $0.core.resetPrefixCache(resetRunningRequests: resetRunningRequests)
            publishKVEvents(&$0.core)
            if !$0.core.hasWork { $0.core.publishMetrics() }
            return done
        }
        if resetRunningRequests { wake.yield() }
        return done
    }

    /// The low 64 bits of every block hash a request could hit now (blocks in use and
    /// free-but-cached ones): what the engine's KV events should have told a subscriber.
    public func cachedBlockHashes() -> (hashes: Set<UInt64>, physicalBlocks: Int) {
        state.withLock { ($0.core.pool.cachedHashes, $0.core.pool.cachedBlockCount) }
    }

    /// Hands the events recorded so far to the sink as one batch (called under the lock, so
    /// batches leave in the order the cache changed).
    private func publishKVEvents(_ core: inout EngineCore) {
        guard let kvEventSink else { return }
        let events = core.takeKVEvents()
        guard !events.isEmpty else { return }
        kvEventSink(KVEventBatch(ts: Date().timeIntervalSince1970, events: events, dataParallelRank: 0))
    }

    /// Sets the step-duration multiplier, kept finite and at most ``maxSlowdown``.
    public func setSlowdown(_ factor: Double) {
        let bounded = factor.isFinite ? min(max(0, factor), Self.maxSlowdown) : 1
        state.withLock { $0.core.slowdown = bounded }
    }

    /// The step-duration multiplier in effect.
    public var slowdown: Double { state.withLock { $0.core.slowdown } }

    /// Largest slowdown applied; larger asks are taken as this.
    public static let maxSlowdown = 1e6
    /// Longest real sleep for one step, whatever the model says.
    static let maxStepSleep = 3600.0

    /// Running and waiting counts, KV usage and the counters, read consistently.
    public func load() -> (running: Int, waiting: Int, kvUsage: Double, stats: EngineStats) {
        state.withLock { ($0.core.numRunning, $0.core.numWaiting, $0.core.pool.usage, $0.core.stats) }
    }

    /// Prompt tokens the cache would serve for this prompt right now.
    public func cachedPrefixTokens(of prompt: [UInt32], lora: LoRAAdapter? = nil, cacheSalt: String? = nil) -> Int {
        state.withLock { $0.core.cachedPrefixTokens(of: prompt, lora: lora, cacheSalt: cacheSalt) }
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await self.loop()
        }
        let open = state.withLock { s -> [AsyncStream<EngineEvent>.Continuation] in
            s.stopped = true
            let all = Array(s.streams.values)
            s.streams.removeAll()
            return all
        }
        for c in open { c.finish() }
    }

    private func loop() async {
        var wakeIterator = wakeups.makeAsyncIterator()
        while !Task.isCancelled {
            let step = state.withLock { s -> StepResult? in
                s.virtualNow = max(s.virtualNow, wallNow())
                guard s.core.hasWork else { return nil }
                let step = s.core.step(now: s.virtualNow)
                publishKVEvents(&s.core)
                return step
            }
            guard let step else {
                if await wakeIterator.next() == nil { return }
                continue
            }
            let sleep = step.duration * timeScale
            if sleep > 0 {
                do { try await Task.sleep(for: .seconds(sleep.isFinite ? min(sleep, Self.maxStepSleep) : Self.maxStepSleep)) } catch { return }
            }
            var deliveries: [(AsyncStream<EngineEvent>.Continuation, EngineEvent, Bool)] = []
            state.withLock { s in
                s.virtualNow = max(s.virtualNow, step.end)
                s.core.publishMetrics()
                for out in step.outputs {
                    guard let c = s.streams[out.id] else { continue }
                    if let t = out.token { deliveries.append((c, .token(t, first: out.isFirstToken), false)) }
                    if let f = out.finished {
                        deliveries.append((c, .finished(f), true))
                        s.streams[out.id] = nil
                    }
                }
            }
            for (c, e, last) in deliveries {
                c.yield(e)
                if last { c.finish() }
            }
            if step.duration == 0 && step.outputs.isEmpty { await Task.yield() }
        }
    }

    private func wallNow() -> Double {
        guard timeScale > 0 else { return 0 }
        let e = ContinuousClock.now - start
        let seconds = Double(e.components.seconds) + Double(e.components.attoseconds) * 1e-18
        return seconds / timeScale
    }
}
