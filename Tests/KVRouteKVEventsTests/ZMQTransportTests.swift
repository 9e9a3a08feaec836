import Foundation
@testable import KVRouteKVEvents
import KVRouteTestSupport
import Testing

/// libzmq is there when the test tools are installed (`apt-get install libzmq5`).
enum ZMQ {
    static var available: Bool { (try? LibZMQ.load()) != nil || ExternalTool.peersRequired }
    static var withPeers: Bool { available && Peers.enabled }
}

/// The ZMQ transport against itself and against pyzmq: PUB/SUB both ways, bind and connect
/// both ways, and vLLM's replay protocol from both ends.
@Suite struct ZMQTransportTests {
    static let topic = "kv@pod-a@tiny-llama"

    /// Batch `seq` of the stream the Swift side publishes.
    static func batch(_ seq: Int) -> KVEventBatch {
        let tokens = (0..<32).map { UInt32(seq * 100 + $0) }
        let hasher = VLLMBlockHasher(blockSize: 16, hashSeed: "0")
        let stored = BlockStored(
            blockHashes: hasher.blockHashes(tokens: tokens).map(\.external), parentBlockHash: seq % 2 == 0 ? nil : .unsigned(UInt64.max - UInt64(seq)),
            tokenIDs: tokens, blockSize: 16, medium: "GPU", extraKeys: [nil, nil], groupIdx: 0, kvCacheSpecKind: "full_attention"
        )
        var events: [KVEvent] = [.blockStored(stored)]
        if seq % 3 == 1 { events.append(.blockRemoved(BlockRemoved(blockHashes: [.unsigned(UInt64(seq))]))) }
        if seq % 5 == 4 { events.append(.allBlocksCleared) }
        return KVEventBatch(ts: 1_752_000_000 + Double(seq) / 8, events: events, dataParallelRank: 0)
    }

    @Test func missingLibraryNamesThePackage() {
        let error = #expect(throws: KVEventsError.self) { try LibZMQ(candidates: ["libzmq-that-is-not-there.so.9"]) }
        #expect(error?.code == .zmqUnavailable)
        #expect(error?.message.contains("apt-get install libzmq5") == true)
    }

    @Test(.enabled(if: ZMQ.available)) func inProcessPublishSubscribeAndReplay() async throws {
        let publisher = try KVEventPublisher(.init(endpoint: "tcp://127.0.0.1:*", bind: true, replayEndpoint: "tcp://127.0.0.1:*", topic: Self.topic))
        defer { publisher.close() }
        let endpoint = try #require(publisher.boundEndpoint)
        let subscriber = try KVEventSubscriber(.init(endpoint: endpoint, topic: "kv@"))
        defer { subscriber.close() }
        // PUB drops until the subscription reaches it: publish until batches arrive.
        let received = try await collect(subscriber, count: 10) { seq in publisher.publish(Self.batch(seq)) }
        let first = try #require(received.first).sequence
        for (i, m) in received.enumerated() {
            #expect(m.topicString == Self.topic)
            #expect(m.sequence == first + UInt64(i))
            #expect(try m.batch() == Self.batch(Int(m.sequence)))
        }
        // Replay from an arbitrary seq returns exactly the buffered tail.
        let client = KVEventReplayClient(endpoint: try #require(publisher.boundReplayEndpoint))
        let replayed = try await client.replay(from: 3)
        let next = publisher.statistics.nextSequence
        #expect(replayed.map(\.sequence) == Array(3..<next))
        for m in replayed { #expect(try m.batch() == Self.batch(Int(m.sequence))) }
        #expect(try await client.replay(from: next + 100).isEmpty)
        // The publisher counts a replay once its end marker is sent, which may be just after
        // the client has read it.
        let deadline = ContinuousClock.now + .seconds(5)
        while publisher.statistics.replayRequests < 2, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(publisher.statistics.replayRequests == 2)
    }

    /// close() ends the stream within a poll interval; a second messages() is already finished.
    @Test(.enabled(if: ZMQ.available)) func subscriberStopsWithinAPoll() async throws {
        let subscriber = try KVEventSubscriber(.init(endpoint: "tcp://127.0.0.1:*", bind: true, pollInterval: .milliseconds(20)))
        let stream = subscriber.messages()
        let task = Task { var n = 0; for await _ in stream { n += 1 }; return n }
        for await _ in subscriber.messages() { Issue.record("a second stream delivered a message") }
        try await Task.sleep(for: .milliseconds(50))
        subscriber.close()
        #expect(await task.value == 0)
    }

    /// run() is Service-shaped: cancelling it closes the publisher; later batches are dropped.
    @Test(.enabled(if: ZMQ.available)) func publisherRunEndsOnCancellation() async throws {
        let publisher = try KVEventPublisher(.init(endpoint: "tcp://127.0.0.1:*"))
        let task = Task { await publisher.run() }
        publisher.publish(Self.batch(0))
        try await Task.sleep(for: .milliseconds(20))
        task.cancel()
        await task.value
        publisher.publish(Self.batch(1))
        #expect(publisher.statistics.published == 1)
        #expect(publisher.statistics.dropped == 1)
    }

    @Test(.enabled(if: ZMQ.available)) func replayClientTimesOutOnSilentServer() async throws {
        let client = KVEventReplayClient(endpoint: "tcp://127.0.0.1:\(freePort())", timeout: .milliseconds(300))
        let error = await #expect(throws: KVEventsError.self) { try await client.replay(from: 0) }
        #expect(error?.code == .timedOut)
    }

    // MARK: - Against pyzmq

    struct Published: Decodable { var batches: [BatchDescription] }

    /// Python PUB → Swift SUB, with the PUB binding (vLLM's `tcp://*:P`) or connecting to a
    /// SUB that binds (vLLM's `tcp://host:P`). Python also sends another topic and a message
    /// whose seq is not 8 bytes: neither is delivered; the second is counted.
    @Test(.enabled(if: ZMQ.withPeers), arguments: [("vllm032", false), ("named", true), ("positional", false)])
    func pythonPublisherSwiftSubscriber(form: String, subscriberBinds: Bool) async throws {
        var endpoint = "tcp://127.0.0.1:\(freePort())"
        let subscriber: KVEventSubscriber
        var args = ["pub", "--topic", Self.topic, "--count", "7", "--form", form, "--seconds", "20"]
        if subscriberBinds {
            subscriber = try KVEventSubscriber(.init(endpoint: "tcp://127.0.0.1:*", bind: true, topic: Self.topic))
            endpoint = try #require(subscriber.boundEndpoint)
            args += ["--endpoint", endpoint]
        } else {
            args += ["--endpoint", endpoint, "--bind"]
            subscriber = try KVEventSubscriber(.init(endpoint: endpoint, topic: Self.topic))
        }
        defer { subscriber.close() }
        let peer = try BackgroundPeer("kv_events_reference.py", args)
        defer { peer.stop() }
        let published = try await peer.firstLine(as: Published.self)
        let received = try await collect(subscriber, count: 14) { _ in }
        for (i, m) in received.enumerated() {
            #expect(m.topicString == Self.topic)
            if i > 0 { #expect(m.sequence == received[i - 1].sequence + 1) }
            let expected = published.batches[Int(m.sequence % 7)]
            #expect(BatchDescription(try m.batch()) == expected, "seq \(m.sequence)")
        }
        #expect(subscriber.statistics.malformed >= 10)
    }

    struct Subscribed: Decodable {
        struct Message: Decodable {
            var topic: String
            var seq: UInt64
            var batch: BatchDescription
            var batch_shape: String
            var event_shapes: [String]
        }
        var messages: [Message]
    }

    /// Swift PUB → Python SUB, binding or connecting, in each layout.
    @Test(.enabled(if: ZMQ.withPeers), arguments: [(KVEventWireFormat.vllm032, true), (.positional, false), (.named, false)])
    func swiftPublisherPythonSubscriber(format: KVEventWireFormat, publisherBinds: Bool) async throws {
        let publisher: KVEventPublisher
        var args = ["sub", "--topic", "kv@", "--count", "12", "--seconds", "20"]
        if publisherBinds {
            publisher = try KVEventPublisher(.init(endpoint: "tcp://127.0.0.1:*", topic: Self.topic, format: format))
            args += ["--endpoint", try #require(publisher.boundEndpoint)]
        } else {
            let endpoint = "tcp://127.0.0.1:\(freePort())"
            args += ["--endpoint", endpoint, "--bind"]
            // A host endpoint: the publisher connects, as vLLM's does.
            publisher = try KVEventPublisher(.init(endpoint: endpoint, topic: Self.topic, format: format))
            #expect(publisher.boundEndpoint == nil)
        }
        defer { publisher.close() }
        let done = Locked(false)
        let run = Task {
            defer { done.withLock { $0 = true } }
            return try await Peers.run("kv_events_reference.py", args, timeout: 30, as: Subscribed.self)
        }
        // PUB drops until the subscription reaches it: publish until the peer has its batches.
        var seq = 0
        while !done.value, seq < 2_000 {
            publisher.publish(Self.batch(seq))
            seq += 1
            try await Task.sleep(for: .milliseconds(10))
        }
        let subscribed = try await run.value
        #expect(subscribed.messages.count == 12)
        for m in subscribed.messages {
            #expect(m.topic == Self.topic)
            #expect(m.batch == BatchDescription(Self.batch(Int(m.seq)), skipped: false))
            #expect(m.batch_shape == (format.batch == .named ? "map" : "array"))
            #expect(m.event_shapes[0].hasPrefix(format.events == .named ? "map:type,block_hashes," : "array:11"))
        }
    }

    struct Replayed: Decodable {
        struct Message: Decodable {
            var seq: UInt64
            var batch: BatchDescription
        }
        var messages: [Message]
        var ended: Bool
    }

    /// A Python DEALER asks our replay ROUTER for seq ≥ 4 of 9 batches.
    @Test(.enabled(if: ZMQ.withPeers)) func pythonReplayClient() async throws {
        let publisher = try KVEventPublisher(.init(endpoint: "tcp://127.0.0.1:*", replayEndpoint: "tcp://127.0.0.1:*", topic: Self.topic, format: .named))
        defer { publisher.close() }
        for seq in 0..<9 { publisher.publish(Self.batch(seq)) }
        while publisher.statistics.published < 9 { try await Task.sleep(for: .milliseconds(10)) }
        let replayed = try await Peers.run(
            "kv_events_reference.py", ["replay", "--endpoint", try #require(publisher.boundReplayEndpoint), "--start", "4", "--seconds", "10"], as: Replayed.self
        )
        #expect(replayed.ended)
        #expect(replayed.messages.map(\.seq) == Array(4..<9))
        for m in replayed.messages { #expect(m.batch == BatchDescription(Self.batch(Int(m.seq)), skipped: false)) }
    }

    struct ReplayServer: Decodable {
        var endpoint: String
        var batches: [BatchDescription]
    }

    /// Our replay client against a Python ROUTER answering as vLLM's publisher does.
    @Test(.enabled(if: ZMQ.withPeers)) func swiftReplayClientPythonServer() async throws {
        let peer = try BackgroundPeer("kv_events_reference.py", ["replay-server", "--count", "6", "--form", "vllm032", "--seconds", "20"])
        defer { peer.stop() }
        let server = try await peer.firstLine(as: ReplayServer.self)
        let client = KVEventReplayClient(endpoint: server.endpoint)
        let all = try await client.replay(from: 0)
        #expect(all.map(\.sequence) == Array(0..<6))
        for m in all { #expect(BatchDescription(try m.batch()) == server.batches[Int(m.sequence)]) }
        #expect(try await client.replay(from: 5).map(\.sequence) == [5])
    }

    // MARK: - Helpers

    /// Calls `tick` every 10 ms until `count` consecutive-from-first messages arrived (20 s at most).
    func collect(_ subscriber: KVEventSubscriber, count: Int, tick: @escaping @Sendable (Int) -> Void) async throws -> [KVEventMessage] {
        let stream = subscriber.messages()
        let ticker = Task {
            var seq = 0
            while !Task.isCancelled, seq < 2_000 {
                tick(seq)
                seq += 1
                try? await Task.sleep(for: .milliseconds(10))
            }
        }
        let timer = Task {
            try await Task.sleep(for: .seconds(20))
            subscriber.close()
        }
        defer {
            ticker.cancel()
            timer.cancel()
        }
        var out: [KVEventMessage] = []
        for await m in stream {
            out.append(m)
            if out.count == count { break }
        }
        try #require(out.count == count, "received \(out.count) of \(count): \(subscriber.statistics) \(out.map(\.sequence))")
        return out
    }

}
