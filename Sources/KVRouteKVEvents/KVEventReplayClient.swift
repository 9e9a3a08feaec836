import Foundation
import Synchronization

/// Asks an engine's replay ROUTER socket for the batches it still holds from a seq on —
/// what a subscriber does after it sees a gap. Speaks vLLM's protocol over a DEALER socket:
/// sends `["", start_seq (8 bytes, big-endian)]`, reads `["", seq, payload]` until the end
/// marker (seq −1, empty payload). A REQ socket cannot be used: it accepts one reply per
/// request, and a replay is many.
public struct KVEventReplayClient: Sendable {
    public var endpoint: String
    /// How long to wait for each answer before giving up.
    public var timeout: Duration
    /// Most batches accepted from one replay (a bound against a server that never ends).
    public var maxBatches: Int
    public var maxMessageBytes: Int

    public init(endpoint: String, timeout: Duration = .seconds(5), maxBatches: Int = 100_000, maxMessageBytes: Int = 64 << 20) {
        self.endpoint = endpoint
        self.timeout = timeout
        self.maxBatches = maxBatches
        self.maxMessageBytes = maxMessageBytes
    }

    /// Every batch the server holds with seq ≥ `start`, in its order (topic empty).
    public func replay(from start: UInt64) async throws(KVEventsError) -> [KVEventMessage] {
        let cancelled = Locked(false)
        let config = self
        let result: Result<[KVEventMessage], KVEventsError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let thread = Thread { continuation.resume(returning: config.run(from: start, cancelled: cancelled)) }
                thread.name = "kv-events-replay"
                thread.start()
            }
        } onCancel: {
            cancelled.withLock { $0 = true }
        }
        return try result.get()
    }

    func run(from start: UInt64, cancelled: Locked<Bool>) -> Result<[KVEventMessage], KVEventsError> {
        Result { () throws(KVEventsError) -> [KVEventMessage] in
            let socket = try ZMQSocket(.dealer)
            defer { socket.close() }
            try socket.setOption(LibZMQ.MAXMSGSIZE, Int64(maxMessageBytes))
            try socket.connect(endpoint)
            let slice = 50
            let limit = Int(timeout.components.seconds * 1_000 + timeout.components.attoseconds / 1_000_000_000_000_000)
            guard try socket.send([[], KVEventMessage.sequenceBytes(start)], timeoutMilliseconds: max(limit, 1)) else {
                throw KVEventsError(code: .timedOut, message: "replay request to \(endpoint) could not be sent within \(timeout)")
            }
            var out: [KVEventMessage] = []
            var waited = 0
            while true {
                if cancelled.withLock({ $0 }) { throw KVEventsError(code: .closed, message: "replay cancelled") }
                guard let message = try socket.receive(timeoutMilliseconds: slice, maxFrames: 3) else {
                    waited += slice
                    if waited >= limit { throw KVEventsError(code: .timedOut, message: "no replay answer from \(endpoint) within \(timeout)") }
                    continue
                }
                waited = 0
                let f = message.frames
                guard !message.truncated, f.count == 3, f[0].isEmpty, let seq = KVEventMessage.sequence(f[1]) else {
                    throw KVEventsError(code: .malformedMessage, message: "replay answer is not [\"\", seq, payload] (\(f.count) frames)")
                }
                if seq == KVEventMessage.endOfReplay && f[2].isEmpty { return out }
                guard out.count < maxBatches else {
                    throw KVEventsError(code: .malformedMessage, message: "replay from \(endpoint) sent more than \(maxBatches) batches")
                }
                out.append(KVEventMessage(sequence: seq, payload: f[2]))
            }
        }
    }
}
