import AsyncHTTPClient
import NIOCore
import Synchronization

/// Reads an upstream response body so that a silent or endless engine cannot hold a request:
/// a child task reads the engine and hands each chunk over one at a time (the client's pace
/// still paces the engine), and a watchdog ends the read when the engine sends nothing for
/// `idle` while it is being waited on, or when `deadline` passes. Leaving cancels the read,
/// which aborts the upstream request.
enum UpstreamBody {
    enum Outcome: Sendable {
        /// The engine sent the whole body.
        case complete
        /// The engine failed, went silent or ran past the deadline.
        case upstreamFailed(any Error)
        /// `consume` threw (the client went away, or the body is too large).
        case consumerFailed(any Error)
    }

    struct Timeout: Error, CustomStringConvertible {
        var description: String
    }

    static func pump(
        _ body: HTTPClientResponse.Body, idle: Duration, deadline: ContinuousClock.Instant,
        _ consume: (ByteBuffer) async throws -> Void
    ) async -> Outcome {
        let handoff = Handoff()
        return await withTaskGroup(of: Void.self) { group in
            group.addTask {
                var iterator = body.makeAsyncIterator()
                do {
                    while true {
                        handoff.waitingUpstream(true)
                        guard let chunk = try await iterator.next() else { break }
                        handoff.waitingUpstream(false)
                        guard await handoff.send(chunk) else { return }
                    }
                    handoff.end(nil)
                } catch {
                    handoff.end(error)
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    let now = ContinuousClock.now
                    if now >= deadline {
                        handoff.end(Timeout(description: "the upstream exchange ran past its deadline"))
                        return
                    }
                    var wake = min(deadline, now + idle)
                    if let since = handoff.upstreamWaitStart {
                        if now - since >= idle {
                            handoff.end(Timeout(description: "the engine sent nothing for \(idle)"))
                            return
                        }
                        wake = min(wake, since + idle)
                    }
                    do { try await Task.sleep(until: wake, clock: .continuous) } catch { return }
                }
            }
            var outcome = Outcome.complete
            do {
                while let chunk = try await handoff.next() {
                    do { try await consume(chunk) } catch {
                        outcome = .consumerFailed(error)
                        break
                    }
                }
            } catch {
                outcome = .upstreamFailed(error)
            }
            handoff.end(CancellationError())
            group.cancelAll()
            return outcome
        }
    }

    /// Reads a whole body of at most `limit` bytes.
    static func collect(
        _ body: HTTPClientResponse.Body, limit: Int, idle: Duration, deadline: ContinuousClock.Instant
    ) async -> (ByteBuffer, Outcome) {
        var buffer = ByteBuffer()
        let outcome = await pump(body, idle: idle, deadline: deadline) { chunk in
            guard buffer.readableBytes + chunk.readableBytes <= limit else { throw TooLarge(limit: limit) }
            var chunk = chunk
            buffer.writeBuffer(&chunk)
        }
        return (buffer, outcome)
    }

    struct TooLarge: Error, CustomStringConvertible {
        var limit: Int
        var description: String { "the upstream answer exceeds \(limit) bytes" }
    }

    /// A one-chunk rendezvous between the reading task and the consumer.
    final class Handoff: Sendable {
        struct State {
            var chunk: ByteBuffer?
            var ended = false
            var error: (any Error)?
            var consumer: CheckedContinuation<ByteBuffer?, any Error>?
            var producer: CheckedContinuation<Bool, Never>?
            var waitingSince: ContinuousClock.Instant?
        }

        private let state = Mutex(State())

        /// When the reader started waiting for the engine, if it is waiting now.
        var upstreamWaitStart: ContinuousClock.Instant? { state.withLock { $0.waitingSince } }

        func waitingUpstream(_ waiting: Bool) {
            state.withLock { $0.waitingSince = waiting ? .now : nil }
        }

        /// Gives a chunk to the consumer; false when the consumer is gone.
        func send(_ chunk: ByteBuffer) async -> Bool {
            await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                let (accepted, consumer): (Bool?, CheckedContinuation<ByteBuffer?, any Error>?) = state.withLock { s in
                    if s.ended { return (false, nil) }
                    if let waiting = s.consumer {
                        s.consumer = nil
                        return (true, waiting)
                    }
                    s.chunk = chunk
                    s.producer = c
                    return (nil, nil)
                }
                consumer?.resume(returning: chunk)
                if let accepted { c.resume(returning: accepted) }
            }
        }

        /// The next chunk; nil at the end; throws what ended the body early.
        func next() async throws -> ByteBuffer? {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<ByteBuffer?, any Error>) in
                enum Action { case deliver(ByteBuffer, CheckedContinuation<Bool, Never>?), finish((any Error)?), wait }
                let action: Action = state.withLock { s in
                    if let chunk = s.chunk {
                        s.chunk = nil
                        let producer = s.producer
                        s.producer = nil
                        return .deliver(chunk, producer)
                    }
                    if s.ended { return .finish(s.error) }
                    s.consumer = c
                    return .wait
                }
                switch action {
                case .deliver(let chunk, let producer):
                    producer?.resume(returning: true)
                    c.resume(returning: chunk)
                case .finish(let error):
                    if let error { c.resume(throwing: error) } else { c.resume(returning: nil) }
                case .wait:
                    break
                }
            }
        }

        /// Ends the body (the first call wins): nil is a normal end. A chunk not yet taken
        /// is dropped when the end is an error.
        func end(_ error: (any Error)?) {
            let (consumer, producer, result): (CheckedContinuation<ByteBuffer?, any Error>?, CheckedContinuation<Bool, Never>?, (any Error)?) =
                state.withLock { s in
                    guard !s.ended else { return (nil, nil, nil) }
                    s.ended = true
                    s.error = error
                    if error != nil { s.chunk = nil }
                    let c = s.consumer, p = s.producer
                    s.consumer = nil
                    s.producer = nil
                    return (c, p, error)
                }
            producer?.resume(returning: false)
            if let consumer {
                if let result { consumer.resume(throwing: result) } else { consumer.resume(returning: nil) }
            }
        }
    }
}
