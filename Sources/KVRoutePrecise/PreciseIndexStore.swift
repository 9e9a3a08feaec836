import KVRouteKVEvents
import Synchronization

/// The shared ``PreciseBlockIndex`` and each engine's feed status behind one lock: the ingest
/// service writes, scorers and `/debug` readers read.
public final class PreciseIndexStore: Sendable {
    /// How one engine's event stream is doing.
    public struct FeedStatus: Sendable, Hashable {
        /// Batches applied.
        public var batches = 0
        /// Seq jumps forward seen (lost batches).
        public var gaps = 0
        /// Gaps closed by the engine's replay socket.
        public var replayed = 0
        /// Gaps that could not be replayed: the engine's blocks were dropped and its view
        /// rebuilt from the events that followed.
        public var dropped = 0
        /// Seq steps back: the engine restarted and its blocks were dropped.
        public var restarts = 0
        /// Payloads that did not decode (skipped; their seq still counts).
        public var malformed = 0
        /// The seq expected next.
        public var expectedSeq: UInt64?
        /// The engine's timestamp of the last batch applied (seconds since 1970).
        public var lastBatchTime: Double?
        /// Seconds between the last batch's timestamp and when it was applied.
        public var lagSeconds: Double = 0
        /// Whether the engine's hashes are the picker's (see ``PreciseIndexStore/routed(blockHashes:engine:)``).
        public var hashes = HashAgreement()
        /// The disagreement was logged and set in the metrics. The verdict can turn at a
        /// routed request (outside any batch) as well as at a batch, so the batch that first
        /// finds it turned reports it.
        public var hashMismatchReported = false
    }

    struct State {
        var index: PreciseBlockIndex
        var feeds: [String: FeedStatus] = [:]
    }

    private let state: Mutex<State>

    public init(_ configuration: PreciseBlockIndex.Configuration = .init()) {
        state = Mutex(State(index: PreciseBlockIndex(configuration)))
    }

    /// Reads the index under the lock.
    public func read<T: Sendable>(_ body: (borrowing PreciseBlockIndex) -> T) -> T {
        state.withLock { body($0.index) }
    }

    /// Changes the index under the lock.
    public func update<T: Sendable>(_ body: (inout PreciseBlockIndex) -> T) -> T {
        state.withLock { body(&$0.index) }
    }

    /// Changes one engine's feed status and the index together.
    func update<T: Sendable>(engine: String, _ body: (inout PreciseBlockIndex, inout FeedStatus) -> T) -> T {
        state.withLock { s in
            var feed = s.feeds[engine] ?? FeedStatus()
            defer { s.feeds[engine] = feed }
            return body(&s.index, &feed)
        }
    }

    /// The picker sent a request with these block hashes (its own hashing) to `engine`: its
    /// events should soon hold the first one. The verdict is in ``feedStatus(engine:)``'s
    /// ``FeedStatus/hashes``.
    public func routed(blockHashes: [UInt64], engine: String) {
        guard let first = blockHashes.first else { return }
        state.withLock { s in
            let held = s.index.copies(of: first, engine: engine) > 0
            s.feeds[engine, default: FeedStatus()].hashes.routed(firstBlock: first, held: held)
        }
    }

    /// See ``PreciseBlockIndex/matchedBlocks(_:model:lora:)``.
    public func matchedBlocks(_ hashes: [UInt64], model: String, lora: String? = nil) -> [String: Int] {
        state.withLock { $0.index.matchedBlocks(hashes, model: model, lora: lora) }
    }

    /// The block hashes the index holds for `engine`.
    public func hashes(engine: String) -> Set<UInt64> {
        state.withLock { $0.index.hashes(engine: engine) }
    }

    public func feedStatus(engine: String) -> FeedStatus? {
        state.withLock { $0.feeds[engine] }
    }

    public var statistics: PreciseBlockIndex.Statistics { state.withLock { $0.index.statistics } }
    public var count: Int { state.withLock { $0.index.count } }
}
