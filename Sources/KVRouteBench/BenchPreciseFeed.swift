import KVRouteCore
import KVRouteEngineSim
import KVRouteKVEvents
import KVRoutePrecise
import KVRouteRouting
import Synchronization

/// `precise-prefix-cache-scorer` in the simulation: the in-process engines' own KV events
/// (``EngineConfiguration/recordKVEvents``) feed a ``PreciseIndexStore`` when each step ends,
/// as a subscriber would see them after the step; the prompt is hashed from the tokens the
/// engine is given (the simulation has no text to render), with the scorer's block size and
/// hash seed. The simulation runs one decision at a time: ``prompt(_:)`` names the tokens of
/// the request being routed.
final class BenchPreciseFeed: PreciseBlockLookup {
    let store = PreciseIndexStore()
    private let current = Mutex<[UInt32]>([])

    /// A feed installed in `router`'s ledger when its configuration names a precise scorer.
    static func install(into router: RequestRouter) -> BenchPreciseFeed? {
        guard router.configuration.pickerConfig.plugins.contains(where: { $0.type == "precise-prefix-cache-scorer" }) else { return nil }
        let feed = BenchPreciseFeed()
        router.scheduler.withLedger { $0.update(PrecisePrefixCacheScorer.sourceKey) { $0.lookup = feed } }
        return feed
    }

    /// The tokens of the request routed next.
    func prompt(_ tokens: [UInt32]) { current.withLock { $0 = tokens } }

    /// One engine step's events, applied when the step ends (`now`, virtual seconds).
    func apply(_ events: [KVEvent], engine: EndpointAddress, now: Double) {
        guard !events.isEmpty else { return }
        store.update { $0.apply(KVEventBatch(ts: now, events: events), engine: engine.description, model: "") }
    }

    func match(_ request: InferenceRequest, blockSize: Int, hashSeed: String, maxBlocks: Int) -> PreciseBlockMatch {
        let tokens = current.withLock { Array($0.prefix(maxBlocks * blockSize)) }
        let hashes = VLLMBlockHasher(blockSize: blockSize, hashSeed: hashSeed).blockHashes(tokens: tokens).map(\.low64)
        guard !hashes.isEmpty else { return PreciseBlockMatch(total: 0, held: [:]) }
        var held: [EndpointAddress: Int] = [:]
        for (engine, n) in store.matchedBlocks(hashes, model: "") {
            if let a = EndpointAddress(engine) { held[a] = n }
        }
        return PreciseBlockMatch(total: hashes.count, held: held, blockHashes: hashes)
    }

    func routed(blockHashes: [UInt64], to endpoint: EndpointAddress) {
        store.routed(blockHashes: blockHashes, engine: endpoint.description)
    }
}
