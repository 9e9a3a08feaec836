import Foundation
import Synchronization

/// Receives KV event messages from a vLLM engine (or anything publishing its format) on a
/// SUB socket. A dedicated thread owns the socket and polls it with a short timeout, so it
/// notices a stop within ``Configuration/pollInterval``; nothing blocks the cooperative pool.
///
/// Messages that are not `[topic, 8-byte seq, payload]` are dropped and counted; payloads
/// are handed on undecoded (``KVEventMessage/batch(decoder:)`` decodes them), so one bad
/// batch never stops the stream.
public final class KVEventSubscriber: Sendable {
    public struct Configuration: Sendable {
        /// `tcp://host:port` of the engine's PUB socket, or the address to bind.
        public var endpoint: String
        /// Bind instead of connecting (for engines configured with a host endpoint, which
        /// connect to their subscriber).
        public var bind: Bool
        /// Topic prefix to subscribe to; empty for every message.
        public var topic: String
        /// Larger messages make libzmq drop the connection instead of buffering them.
        public var maxMessageBytes: Int
        public var receiveHighWaterMark: Int
        /// How long one poll waits before the thread looks for a stop request.
        public var pollInterval: Duration
        /// Messages held for a slow consumer before new ones are dropped (and counted).
        public var bufferedMessages: Int

        public init(
            endpoint: String, bind: Bool = false, topic: String = "", maxMessageBytes: Int = 64 << 20,
            receiveHighWaterMark: Int = 100_000, pollInterval: Duration = .milliseconds(100), bufferedMessages: Int = 10_000
        ) {
            self.endpoint = endpoint
            self.bind = bind
            self.topic = topic
            self.maxMessageBytes = maxMessageBytes
            self.receiveHighWaterMark = receiveHighWaterMark
            self.pollInterval = pollInterval
            self.bufferedMessages = bufferedMessages
        }
    }

    public struct Statistics: Sendable, Hashable {
        public var received = 0
        /// Messages that were not `[topic, 8-byte seq, payload]`.
        public var malformed = 0
        /// Messages dropped because the consumer fell behind.
        public var dropped = 0
    }

    struct State {
        var socket: ZMQSocket?
        var started = false
        var stopped = false
        var statistics = Statistics()
    }

    public let configuration: Configuration
    /// The endpoint as bound (the chosen port for `tcp://127.0.0.1:*`), nil when connecting.
    public let boundEndpoint: String?
    private let state: Locked<State>

    /// Creates the socket and binds or connects it; messages queue in libzmq until
    /// ``messages()`` starts the receiving thread.
    public init(_ configuration: Configuration) throws(KVEventsError) {
        guard configuration.maxMessageBytes > 0, configuration.bufferedMessages > 0 else {
            throw KVEventsError(code: .invalidConfiguration, message: "maxMessageBytes and bufferedMessages must be positive")
        }
        self.configuration = configuration
        let sub = try ZMQSocket(.sub)
        try sub.setOption(LibZMQ.MAXMSGSIZE, Int64(configuration.maxMessageBytes))
        try sub.setOption(LibZMQ.RCVHWM, Int32(clamping: configuration.receiveHighWaterMark))
        try sub.setOption(LibZMQ.SUBSCRIBE, bytes: Array(configuration.topic.utf8))
        if configuration.bind {
            try sub.bind(configuration.endpoint)
            boundEndpoint = sub.lastEndpoint
        } else {
            try sub.connect(configuration.endpoint)
            boundEndpoint = nil
        }
        state = Locked(State(socket: sub))
    }

    deinit { close() }

    public var statistics: Statistics { state.withLock { $0.statistics } }

    /// The messages, in arrival order, until ``close()`` or until the consumer stops
    /// iterating. Only the first call receives; later calls get a finished stream.
    public func messages() -> AsyncStream<KVEventMessage> {
        let (stream, continuation) = AsyncStream.makeStream(of: KVEventMessage.self, bufferingPolicy: .bufferingOldest(configuration.bufferedMessages))
        let socket: ZMQSocket? = state.withLock { s in
            guard !s.started, !s.stopped, let socket = s.socket else { return nil }
            s.started = true
            s.socket = nil
            return socket
        }
        guard let socket else {
            continuation.finish()
            return stream
        }
        let state = self.state
        continuation.onTermination = { _ in state.withLock { $0.stopped = true } }
        let interval = max(1, Int(configuration.pollInterval.components.seconds * 1_000 + configuration.pollInterval.components.attoseconds / 1_000_000_000_000_000))
        let thread = Thread {
            while !state.withLock({ $0.stopped }) {
                let received: (frames: [[UInt8]], truncated: Bool)?
                do { received = try socket.receive(timeoutMilliseconds: interval, maxFrames: 3) } catch { break }
                guard let received else { continue }
                let f = received.frames
                guard !received.truncated, f.count == 3, let seq = KVEventMessage.sequence(f[1]) else {
                    state.withLock { $0.statistics.malformed += 1 }
                    continue
                }
                let result = continuation.yield(KVEventMessage(topic: f[0], sequence: seq, payload: f[2]))
                state.withLock {
                    $0.statistics.received += 1
                    if case .dropped = result { $0.statistics.dropped += 1 }
                }
            }
            socket.close()
            continuation.finish()
        }
        thread.name = "kv-events-subscriber"
        thread.start()
        return stream
    }

    /// Stops receiving; the stream finishes within one poll interval.
    public func close() {
        let idle = state.withLock { s in
            s.stopped = true
            defer { s.socket = nil }
            return s.socket
        }
        idle?.close()
    }
}
