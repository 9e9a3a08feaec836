/// The payload of one KV event message: the events of one engine step.
public struct KVEventBatch: Hashable, Sendable {
    /// Seconds since the epoch, when the engine built the batch.
    public var ts: Double
    public var events: [KVEvent]
    public var dataParallelRank: Int?
    /// Events of types this decoder does not know, skipped while decoding (never encoded).
    public var skippedEvents: Int

    public init(ts: Double, events: [KVEvent], dataParallelRank: Int? = 0, skippedEvents: Int = 0) {
        self.ts = ts
        self.events = events
        self.dataParallelRank = dataParallelRank
        self.skippedEvents = skippedEvents
    }
}

/// How a batch and its events are laid out on the wire. vLLM uses msgspec structs with
/// `omit_defaults`: `array_like` structs are positional arrays (events tagged by their first
/// item), the others maps (events tagged by a `type` key).
public struct KVEventWireFormat: Hashable, Sendable {
    public enum Layout: String, Hashable, Sendable, CaseIterable {
        case positional
        case named
    }

    public var batch: Layout
    public var events: Layout

    public init(batch: Layout, events: Layout) {
        self.batch = batch
        self.events = events
    }

    /// What vLLM 0.32.0 sends: `[ts, [events], dp_rank]`, each event a map with `type` first.
    public static let vllm032 = KVEventWireFormat(batch: .positional, events: .named)
    /// Batch and events both maps (vLLM's main branch after `array_like` was dropped).
    public static let named = KVEventWireFormat(batch: .named, events: .named)
    /// Batch and events both positional (older releases): `["BlockStored", hashes, …]`.
    public static let positional = KVEventWireFormat(batch: .positional, events: .positional)
}
