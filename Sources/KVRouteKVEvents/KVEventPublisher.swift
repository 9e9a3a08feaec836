import Dispatch
import Foundation
import Synchronization

/// Publishes KV event batches the way vLLM's `ZmqEventPublisher` does: a PUB socket sending
/// `[topic, seq, payload]` with seq counting from 0, and an optional ROUTER socket that
/// replays buffered batches on request.
///
/// `publish` never blocks: it queues the payload for a dedicated thread that owns both
/// sockets (no ZMQ call runs on the cooperative pool). A full queue drops the batch and
/// counts it; subscribers see the gap in seq and can ask for a replay.
public final class KVEventPublisher: Sendable {
    public struct Configuration: Sendable {
        /// `tcp://*:5557` binds; `tcp://host:port` connects to a subscriber that binds.
        public var endpoint: String
        /// Overrides vLLM's bind-or-connect rule (see ``endpoint``) when set.
        public var bind: Bool?
        /// The ROUTER endpoint for replay requests (always bound), or none.
        public var replayEndpoint: String?
        public var topic: String
        public var format: KVEventWireFormat
        /// Batches kept for replay.
        public var bufferSteps: Int
        /// The PUB socket's send high-water mark (messages queued per subscriber).
        public var highWaterMark: Int
        /// Batches waiting for the publishing thread before new ones are dropped.
        public var maxQueuedBatches: Int

        public init(
            endpoint: String = "tcp://*:5557", bind: Bool? = nil, replayEndpoint: String? = nil, topic: String = "",
            format: KVEventWireFormat = .vllm032, bufferSteps: Int = 10_000, highWaterMark: Int = 100_000, maxQueuedBatches: Int = 100_000
        ) {
            self.endpoint = endpoint
            self.bind = bind
            self.replayEndpoint = replayEndpoint
            self.topic = topic
            self.format = format
            self.bufferSteps = bufferSteps
            self.highWaterMark = highWaterMark
            self.maxQueuedBatches = maxQueuedBatches
        }
    }

    public struct Statistics: Sendable, Hashable {
        /// Batches sent on the PUB socket.
        public var published = 0
        /// Batches dropped because the queue was full.
        public var dropped = 0
        /// Replay requests answered, and requests that were not `[id, "", start_seq]`.
        public var replayRequests = 0
        public var invalidReplayRequests = 0
        /// The seq the next batch will carry.
        public var nextSequence: UInt64 = 0
    }

    struct State {
        var pending: [[UInt8]] = []
        var running = true
        /// Batches still to hold back from PUB (see ``loseNext(_:)``).
        var toLose = 0
        var statistics = Statistics()
    }

    public let configuration: Configuration
    /// The PUB endpoint as bound (the chosen port for `tcp://127.0.0.1:*`), nil when connecting.
    public let boundEndpoint: String?
    public let boundReplayEndpoint: String?
    private let state: Locked<State>
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchGroup()

    public init(_ configuration: Configuration) throws(KVEventsError) {
        guard configuration.bufferSteps >= 0, configuration.maxQueuedBatches > 0, configuration.highWaterMark >= 0 else {
            throw KVEventsError(code: .invalidConfiguration, message: "bufferSteps, maxQueuedBatches and highWaterMark must not be negative")
        }
        self.configuration = configuration
        let pub = try ZMQSocket(.pub)
        try pub.setOption(LibZMQ.SNDHWM, Int32(clamping: configuration.highWaterMark))
        if configuration.bind ?? ZMQSocket.bindsByDefault(configuration.endpoint) {
            try pub.bind(configuration.endpoint)
            boundEndpoint = pub.lastEndpoint
        } else {
            try pub.connect(configuration.endpoint)
            boundEndpoint = nil
        }
        var replay: ZMQSocket?
        if let endpoint = configuration.replayEndpoint {
            let router = try ZMQSocket(.router)
            try router.setOption(LibZMQ.MAXMSGSIZE, Int64(64))
            try router.bind(endpoint)
            replay = router
        }
        boundReplayEndpoint = replay?.lastEndpoint
        state = Locked(State())
        let worker = Worker(
            pub: pub, replay: replay, topic: Array(configuration.topic.utf8), ring: ReplayRing(capacity: configuration.bufferSteps),
            state: state, wake: wake
        )
        finished.enter()
        let group = finished
        let thread = Thread {
            worker.run()
            group.leave()
        }
        thread.name = "kv-events-publisher"
        thread.start()
    }

    deinit { close() }

    /// Queues one batch, encoded in the configured format.
    public func publish(_ batch: KVEventBatch) {
        publish(payload: batch.encoded(configuration.format))
    }

    /// Queues an already encoded payload.
    public func publish(payload: [UInt8]) {
        let queued = state.withLock { s in
            guard s.running, s.pending.count < configuration.maxQueuedBatches else {
                s.statistics.dropped += 1
                return false
            }
            s.pending.append(payload)
            return true
        }
        if queued { wake.signal() }
    }

    public var statistics: Statistics { state.withLock { $0.statistics } }

    /// The next `count` batches get their seq and go to the replay buffer but are not sent:
    /// what a subscriber sees when libzmq drops for it at the high-water mark (a fault to
    /// test gap handling).
    public func loseNext(_ count: Int) {
        state.withLock { $0.toLose = max(0, count) }
    }

    /// Sends what is queued, closes the sockets and stops the thread (waits up to 5 s).
    public func close() {
        state.withLock { $0.running = false }
        wake.signal()
        _ = finished.wait(timeout: .now() + .seconds(5))
    }

    /// Runs until the task is cancelled, then closes: the shape of a lifecycle `Service`.
    public func run() async {
        while !Task.isCancelled {
            do { try await Task.sleep(for: .seconds(3_600)) } catch { break }
        }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            finished.notify(queue: .global()) { c.resume() }
            state.withLock { $0.running = false }
            wake.signal()
        }
    }

    /// The publishing thread's side: it alone touches the sockets and the replay buffer.
    private final class Worker: @unchecked Sendable {
        let pub: ZMQSocket
        let replay: ZMQSocket?
        let topic: [UInt8]
        var ring: ReplayRing
        let state: Locked<State>
        let wake: DispatchSemaphore
        var sequence: UInt64 = 0

        init(pub: ZMQSocket, replay: ZMQSocket?, topic: [UInt8], ring: ReplayRing, state: Locked<State>, wake: DispatchSemaphore) {
            self.pub = pub
            self.replay = replay
            self.topic = topic
            self.ring = ring
            self.state = state
            self.wake = wake
        }

        func run() {
            while true {
                let (batch, running) = state.withLock { s in
                    let b = s.pending
                    s.pending = []
                    return (b, s.running)
                }
                for payload in batch {
                    let lose = state.withLock { s in
                        guard s.toLose > 0 else { return false }
                        s.toLose -= 1
                        return true
                    }
                    // PUB never blocks: at its high-water mark libzmq drops for that subscriber.
                    if !lose { _ = try? pub.send([topic, KVEventMessage.sequenceBytes(sequence), payload]) }
                    ring.append(sequence, payload)
                    sequence += 1
                }
                if !batch.isEmpty {
                    let next = sequence
                    state.withLock {
                        $0.statistics.published += batch.count
                        $0.statistics.nextSequence = next
                    }
                }
                if let replay {
                    while (try? replay.poll(LibZMQ.POLLIN, timeoutMilliseconds: 0)) == true { serveReplay(replay) }
                }
                if !running && batch.isEmpty { break }
                _ = wake.wait(timeout: .now() + .milliseconds(replay == nil ? 200 : 10))
            }
            pub.close()
            replay?.close()
        }

        /// One request `[identity, "", start_seq]`: every buffered batch with seq ≥ start as
        /// `[identity, "", seq, payload]`, then `[identity, "", -1, ""]`.
        func serveReplay(_ router: ZMQSocket) {
            guard let message = try? router.receive(timeoutMilliseconds: 0, maxFrames: 4) else { return }
            let f = message.frames
            guard !message.truncated, f.count == 3, f[1].isEmpty, (1...8).contains(f[2].count) else {
                state.withLock { $0.statistics.invalidReplayRequests += 1 }
                return
            }
            let identity = f[0]
            let start = f[2].reduce(UInt64(0)) { ($0 << 8) | UInt64($1) }
            for (seq, payload) in ring.entries(from: start) {
                _ = try? router.send([identity, [], KVEventMessage.sequenceBytes(seq), payload])
            }
            _ = try? router.send([identity, [], KVEventMessage.sequenceBytes(KVEventMessage.endOfReplay), []])
            state.withLock { $0.statistics.replayRequests += 1 }
        }
    }
}

/// The last `capacity` published batches, oldest first.
struct ReplayRing {
    private var items: [(UInt64, [UInt8])] = []
    private var head = 0
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    mutating func append(_ seq: UInt64, _ payload: [UInt8]) {
        guard capacity > 0 else { return }
        if items.count < capacity {
            items.append((seq, payload))
        } else {
            items[head] = (seq, payload)
            head = (head + 1) % capacity
        }
    }

    func entries(from start: UInt64) -> [(UInt64, [UInt8])] {
        let ordered = items[head...] + items[..<head]
        return ordered.filter { $0.0 >= start }
    }
}
