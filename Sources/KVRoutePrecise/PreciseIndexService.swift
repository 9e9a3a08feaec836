import Foundation
import KVRouteKVEvents
import Logging
import ServiceLifecycle

/// Feeds a ``PreciseIndexStore`` from every engine's KV events: one ZMQ subscriber per
/// engine, each engine's stream applied in seq order. A gap is closed from the engine's replay
/// socket when it has one (vLLM's `replay_endpoint`); otherwise, or when the replay no longer
/// holds the lost batches, the engine's entries are dropped and rebuilt from the events that
/// follow. A seq going back (the engine restarted) or `AllBlocksCleared` drops the engine's
/// entries too.
public struct PreciseIndexService: Service {
    /// One engine's event source.
    public struct Engine: Sendable, Hashable {
        /// The name lookups return (the engine's address or pod name).
        public var name: String
        /// The engine's PUB endpoint, `tcp://host:port`.
        public var endpoint: String
        /// The engine's replay ROUTER endpoint, when it has one.
        public var replayEndpoint: String?
        /// The model the engine serves: the scope of its blocks (with each event's LoRA name).
        public var model: String
        /// Topic prefix to subscribe to (empty: all).
        public var topic: String

        public init(name: String, endpoint: String, replayEndpoint: String? = nil, model: String, topic: String = "") {
            self.name = name
            self.endpoint = endpoint
            self.replayEndpoint = replayEndpoint
            self.model = model
            self.topic = topic
        }
    }

    public struct Configuration: Sendable {
        public var engines: [Engine]
        /// How long to wait for a replay before dropping the engine's entries instead.
        public var replayTimeout: Duration
        /// The picker's hashing, checked against engines' `vllm:cache_config_info`.
        public var hashing: HashingSettings?

        public init(engines: [Engine], replayTimeout: Duration = .seconds(2), hashing: HashingSettings? = nil) {
            self.engines = engines
            self.replayTimeout = replayTimeout
            self.hashing = hashing
        }
    }

    public let configuration: Configuration
    public let store: PreciseIndexStore
    let metrics: PreciseIndexMetrics?
    let logger: Logger

    public init(configuration: Configuration, store: PreciseIndexStore, metrics: PreciseIndexMetrics? = nil, logger: Logger) {
        self.configuration = configuration
        self.store = store
        self.metrics = metrics
        self.logger = logger
    }

    public func run() async throws {
        // The subscribers connect first, so no engine's early batches wait for another's setup.
        var opened: [(Engine, KVEventSubscriber)] = []
        for engine in configuration.engines {
            do {
                opened.append((engine, try KVEventSubscriber(.init(endpoint: engine.endpoint, topic: engine.topic))))
            } catch {
                logger.error("cannot subscribe to KV events", metadata: ["endpoint": "\(engine.name)", "events": "\(engine.endpoint)", "error": "\(error.message)"])
                throw error
            }
        }
        let subscribers = opened
        logger.info("following KV events", metadata: ["engines": "\(configuration.engines.map(\.endpoint).joined(separator: ","))"])
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for (engine, subscriber) in subscribers {
                    group.addTask { await follow(engine, subscriber) }
                }
            }
        }
        for (_, s) in subscribers { s.close() }
    }

    /// Applies one engine's stream until the task is cancelled.
    func follow(_ engine: Engine, _ subscriber: KVEventSubscriber) async {
        var sequence = EventSequence()
        var log = logger
        log[metadataKey: "endpoint"] = "\(engine.name)"
        let decoder = MessagePackDecoder()
        for await message in subscriber.messages() {
            switch sequence.observe(message.sequence) {
            case .inOrder:
                break
            case .first:
                // Joined mid-stream: what the replay buffer still holds is better than nothing.
                if message.sequence > 0 { _ = await replay(0..<message.sequence, engine, decoder: decoder, log, partial: true) }
            case .gap(let missing):
                log.warning("KV events lost", metadata: ["from_seq": "\(missing.lowerBound)", "to_seq": "\(missing.upperBound)"])
                metrics?.engines[engine.name]?.gaps.increment()
                store.update(engine: engine.name) { _, feed in feed.gaps += 1 }
                if await !replay(missing, engine, decoder: decoder, log) {
                    store.update(engine: engine.name) { index, feed in
                        index.drop(engine: engine.name)
                        feed.dropped += 1
                    }
                    metrics?.engines[engine.name]?.dropped.increment()
                    log.warning("engine's blocks dropped until its events rebuild them", metadata: ["seq": "\(message.sequence)"])
                }
            case .restarted(let missing):
                log.notice("engine restarted (KV event seq went back): its blocks are dropped", metadata: ["seq": "\(message.sequence)"])
                store.update(engine: engine.name) { index, feed in
                    index.drop(engine: engine.name)
                    feed.restarts += 1
                }
                metrics?.engines[engine.name]?.restarts.increment()
                if !missing.isEmpty { _ = await replay(missing, engine, decoder: decoder, log, partial: true) }
            }
            apply(message, engine, decoder: decoder, log)
        }
    }

    /// Fetches and applies the batches in `missing` from the engine's replay socket; false
    /// when it has none or no longer holds all of them (then nothing is applied, unless
    /// `partial`: the part it holds is).
    func replay(_ missing: Range<UInt64>, _ engine: Engine, decoder: MessagePackDecoder, _ log: Logger, partial: Bool = false) async -> Bool {
        guard let endpoint = engine.replayEndpoint else { return false }
        let messages: [KVEventMessage]
        do {
            messages = try await KVEventReplayClient(endpoint: endpoint, timeout: configuration.replayTimeout).replay(from: missing.lowerBound)
        } catch {
            log.warning("KV event replay failed", metadata: ["replay": "\(endpoint)", "error": "\(error.message)"])
            return false
        }
        let wanted = messages.filter { missing.contains($0.sequence) }
        guard wanted.count == missing.count, wanted.first?.sequence == missing.lowerBound else {
            if partial { for m in wanted { apply(m, engine, decoder: decoder, log) } }
            log.warning("KV event replay no longer holds the lost batches", metadata: [
                "replay": "\(endpoint)", "from_seq": "\(missing.lowerBound)", "got": "\(wanted.count)", "wanted": "\(missing.count)",
            ])
            return false
        }
        for m in wanted { apply(m, engine, decoder: decoder, log) }
        store.update(engine: engine.name) { _, feed in feed.replayed += 1 }
        metrics?.engines[engine.name]?.replayed.increment()
        log.info("KV events replayed", metadata: ["from_seq": "\(missing.lowerBound)", "batches": "\(wanted.count)"])
        return true
    }

    /// Checks an engine's `vllm:cache_config_info` labels (from its metrics scrape) against
    /// the picker's hashing: each difference is logged and set in
    /// `kvroute_precise_hashing_mismatch{engine, field}`. Returns the differences.
    @discardableResult
    public func checkCacheConfig(labels: [String: String], engine: String) -> [HashingSettings.Mismatch] {
        guard let hashing = configuration.hashing else { return [] }
        let found = hashing.mismatches(cacheConfigLabels: labels, engine: engine)
        for field in HashingSettings.Mismatch.Field.allCases where field != .hashes {
            metrics?.mismatch[engine]?[field]?.set(to: found.contains { $0.field == field } ? 1.0 : 0.0)
        }
        for m in found {
            logger.error("engine cache configuration differs from the picker's", metadata: ["endpoint": "\(engine)", "field": "\(m.field.rawValue)", "reason": "\(m.message)"])
        }
        return found
    }

    func apply(_ message: KVEventMessage, _ engine: Engine, decoder: MessagePackDecoder, _ log: Logger) {
        let batch: KVEventBatch
        do {
            batch = try message.batch(decoder: decoder)
        } catch {
            log.debug("KV event payload does not decode", metadata: ["seq": "\(message.sequence)", "error": "\(error.message)"])
            store.update(engine: engine.name) { _, feed in
                feed.malformed += 1
                feed.expectedSeq = message.sequence &+ 1
            }
            metrics?.engines[engine.name]?.malformed.increment()
            return
        }
        let lag = max(0, Date().timeIntervalSince1970 - batch.ts)
        let (count, bytes, evicted, newlyDisagrees) = store.update(engine: engine.name) { index, feed in
            let before = index.statistics.evicted
            index.apply(batch, engine: engine.name, model: engine.model)
            for case .blockStored(let s) in batch.events {
                for h in s.blockHashes { feed.hashes.stored(h.low64) }
            }
            let newlyDisagrees = feed.hashes.verdict == .disagrees && !feed.hashMismatchReported
            if newlyDisagrees { feed.hashMismatchReported = true }
            feed.batches += 1
            feed.expectedSeq = message.sequence &+ 1
            feed.lastBatchTime = batch.ts
            feed.lagSeconds = lag
            return (index.count, index.allocatedBytes, index.statistics.evicted - before, newlyDisagrees)
        }
        if newlyDisagrees {
            let h = store.feedStatus(engine: engine.name)?.hashes
            log.error("engine's KV event hashes never match the picker's: check that the engine's block size, --prefix-caching-hash-algo and PYTHONHASHSEED equal the picker's", metadata: [
                "routed": "\(h?.routed ?? 0)", "stored": "\(h?.storedSinceRouted ?? 0)",
            ])
            metrics?.mismatch[engine.name]?[.hashes]?.set(to: 1.0)
        }
        if let metrics {
            metrics.blocks.set(Double(count))
            metrics.bytes.set(Double(bytes))
            if evicted > 0 { metrics.evictions.increment(by: Int64(evicted)) }
            metrics.engines[engine.name]?.batches.increment()
            metrics.engines[engine.name]?.lag.set(lag)
        }
    }
}
