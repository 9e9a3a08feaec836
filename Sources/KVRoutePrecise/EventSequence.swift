/// One engine's KV-event sequence numbers as a subscriber sees them: vLLM numbers its
/// batches 0, 1, 2, … per process, so a jump forward means batches were lost (ask the
/// engine's replay socket for them) and a step back means the engine restarted (its blocks
/// are gone; the new process's earlier batches may be replayed). A value-type state machine:
/// it says what happened, the ingest service acts.
public struct EventSequence: Sendable, Hashable {
    /// What a received seq means.
    public enum Verdict: Sendable, Hashable {
        /// The next batch; apply it.
        case inOrder
        /// The first batch heard from this engine (an earlier part of its stream, if any, was
        /// published before the subscriber connected).
        case first
        /// Batches in `missing` were lost between the last one applied and this one.
        case gap(missing: Range<UInt64>)
        /// The seq went back: the engine restarted. Its new process published `missing`
        /// before this one (empty when this is its first).
        case restarted(missing: Range<UInt64>)
    }

    /// The seq expected next; nil before the first batch.
    public private(set) var expected: UInt64?

    public init() {}

    /// Classifies `seq` and moves past it.
    public mutating func observe(_ seq: UInt64) -> Verdict {
        defer { expected = seq &+ 1 }
        guard let expected else { return .first }
        if seq == expected { return .inOrder }
        if seq > expected { return .gap(missing: expected..<seq) }
        return .restarted(missing: 0..<seq)
    }

    /// Forgets the position (the next batch is a ``Verdict/first``).
    public mutating func reset() { expected = nil }
}
