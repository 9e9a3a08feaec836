/// One KV event message as it crosses ZMQ: `[topic, seq (8 bytes, big-endian), payload]`
/// from the PUB socket, `[seq, payload]` from a replay.
public struct KVEventMessage: Hashable, Sendable {
    public var topic: [UInt8]
    public var sequence: UInt64
    public var payload: [UInt8]

    public init(topic: [UInt8] = [], sequence: UInt64, payload: [UInt8]) {
        self.topic = topic
        self.sequence = sequence
        self.payload = payload
    }

    /// The topic as text (vLLM's topics are UTF-8, e.g. `kv@pod@model`).
    public var topicString: String { String(decoding: topic, as: UTF8.self) }

    /// Decodes the payload.
    public func batch(decoder: MessagePackDecoder = MessagePackDecoder()) throws(KVEventsError) -> KVEventBatch {
        try KVEventBatch(decoding: payload, decoder: decoder)
    }

    /// The replay protocol's end marker: seq −1 (all ones) with an empty payload.
    static let endOfReplay: UInt64 = UInt64.max

    static func sequenceBytes(_ seq: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: seq >> UInt64(56 - $0 * 8)) } }

    /// A big-endian unsigned integer of at most 8 bytes.
    static func sequence(_ bytes: [UInt8]) -> UInt64? {
        guard bytes.count == 8 else { return nil }
        return bytes.reduce(0) { ($0 << 8) | UInt64($1) }
    }
}
