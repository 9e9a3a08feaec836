import Foundation
import Glibc
import KVRouteEngineSim
import KVRouteKVEvents
@testable import KVRouteSimServer
import KVRouteTestSupport
import Synchronization
import Testing

/// libzmq is there when the test tools are installed (scripts/install-test-tools.sh).
enum ZMQLibrary {
    static var available: Bool {
        if ExternalTool.peersRequired { return true }
        return (try? KVEventSubscriber(.init(endpoint: "inproc://kvroute-probe")))?.close() != nil
    }
}

/// Simulated engines publishing KV events over ZMQ, followed by SUB subscribers over TCP
/// loopback: the index each subscriber builds equals the engine's `/debug/kv_blocks` at
/// every checkpoint — through evictions, duplicate blocks, a cache reset and a restart.
@Suite("Simulated engine KV events")
struct SimKVEventsTests {
    static let adapter = "sql-lora"

    @Test(
        "subscribers' indexes equal each engine's cached blocks through evictions, a reset and a restart; seq has no gaps",
        .enabled(if: ZMQLibrary.available), arguments: [(KVEventWireFormat.vllm032, false), (.named, true), (.positional, false)])
    func indexEqualsEngine(format: KVEventWireFormat, hashBytes: Bool) async throws {
        let base = try consecutiveFreePorts(4)
        let kv = KVEventsConfig(
            endpoint: "tcp://*:\(base)", replayEndpoint: "tcp://*:\(base + 2)", topic: "kv@<pod>@<model>", format: format, hashBytes: hashBytes)
        let engine = {
            var e = testEngineConfiguration(numGPUBlocks: 40, maxNumSeqs: 8)
            e.loraAdapters = [Self.adapter]
            return e
        }()
        let followers = try (0..<2).map { i in
            try Follower(endpoint: "tcp://127.0.0.1:\(base + i)", replay: "tcp://127.0.0.1:\(base + 2 + i)", topic: "kv@sim-\(i)@")
        }
        defer { for f in followers { f.close() } }

        // First life: traffic with evictions and duplicates, then a reset, then more traffic.
        try await withKVCluster(engine, kv) { cluster, urls in
            for (i, f) in followers.enumerated() {
                #expect(cluster.servers[i].kvEvents?.configuration.topic == "kv@sim-\(i)@\(engine.model)")
                try await f.waitUntilSubscribed(urls[i])
            }
            try await Self.traffic(urls[0], rounds: 3, seed: 1)
            try await Self.traffic(urls[1], rounds: 1, seed: 2)
            for i in 0..<2 {
                let index = try await followers[i].checkpoint(cluster.servers[i], url: urls[i])
                #expect(index.removed > 0 || i == 1)
                #expect(index.counts.values.contains { $0 > 1 } || index.stored > index.hashes.count || i == 1)
            }
            // A LoRA request and a salted one: their prompt hashes are vLLM's with those keys.
            let prompt = (0..<80).map { UInt32(50_000 + $0) }
            for (model, salt) in [(Self.adapter, nil), (engine.model, "tenant-a")] as [(String, String?)] {
                var body: [String: Any] = ["model": model, "prompt": prompt.map { Int($0) }, "max_tokens": 2]
                if let salt { body["cache_salt"] = salt }
                let r = try await TestHTTP.postJSON(urls[0] + "/v1/completions", body)
                #expect(r.status == 200)
                #expect(r.json?["model"] as? String == model)
                let index = try await followers[0].checkpoint(cluster.servers[0], url: urls[0])
                let expected = VLLMBlockHasher(blockSize: 16, hashSeed: "0")
                    .blockHashes(tokens: prompt, loraName: model == Self.adapter ? model : nil, cacheSalt: salt).map(\.low64)
                #expect(Set(expected).isSubset(of: index.hashes))
            }
            let reset = try await TestHTTP.request(urls[0] + "/reset_prefix_cache", method: .POST)
            #expect(reset.status == 200)
            let cleared = try await followers[0].checkpoint(cluster.servers[0], url: urls[0])
            #expect(cleared.hashes.isEmpty)
            #expect(followers[0].lastBatch?.events == [.allBlocksCleared])
            try await Self.traffic(urls[0], rounds: 1, seed: 3)
            _ = try await followers[0].checkpoint(cluster.servers[0], url: urls[0])
        }
        // Second life on the same ports: seq starts again at 0 and the index starts empty.
        try await withKVCluster(engine, kv) { cluster, urls in
            try await followers[0].waitUntilSubscribed(urls[0])
            try await Self.traffic(urls[0], rounds: 1, seed: 4)
            let index = try await followers[0].checkpoint(cluster.servers[0], url: urls[0])
            #expect(!index.hashes.isEmpty)
            #expect(followers[0].lives == 2)
        }
        #expect(followers[0].checkedHashes.withLock { $0 } > 50)
    }

    /// Completions with token-id prompts over four shared prefixes, four at a time; twins
    /// (same prompt at once) compute their decode blocks twice.
    static func traffic(_ url: String, rounds: Int, seed: UInt64) async throws {
        var rng = SplitMix64(seed: seed)
        for _ in 0..<rounds {
            let bodies: [String] = try (0..<4).map { k in
                let p = Int(rng.next() % 4)
                let prefix = (0..<(48 + 16 * p)).map { 10_000 * (p + 1) + $0 }
                let suffix = k == 3 ? [] : (0..<Int(rng.next() % 40)).map { _ in Int(rng.next() % 100_000) }
                let body: [String: Any] = ["model": model, "prompt": prefix + suffix, "max_tokens": 20]
                return String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
            }
            try await withThrowingTaskGroup(of: Int.self) { group in
                for body in bodies + [bodies[0]] {
                    group.addTask { try await TestHTTP.request(url + "/v1/completions", method: .POST, body: body).status }
                }
                for try await status in group { #expect(status == 200) }
            }
        }
    }
}

/// Runs a two-engine cluster publishing KV events around `body`.
func withKVCluster(_ engine: EngineConfiguration, _ kv: KVEventsConfig, _ body: @Sendable (SimCluster, [String]) async throws -> Void) async throws {
    // libzmq releases a closed socket's port in its own thread: a restart in the same
    // process may find it still taken for a moment.
    var made: SimCluster?
    for _ in 0..<100 {
        made = try? SimCluster(engines: 2, basePort: 0, engine: engine, timeScale: 0.02, kvEvents: kv, logger: quietLogger)
        if made != nil { break }
        try await Task.sleep(for: .milliseconds(50))
    }
    let cluster = try #require(made)
    try await withServices(cluster.services) {
        let ports = await cluster.waitUntilListening()
        try await body(cluster, ports.map { "http://127.0.0.1:\($0)" })
    }
}

/// A SUB subscriber on one engine, keeping every message in arrival order.
final class Follower: Sendable {
    let subscriber: KVEventSubscriber
    let replay: KVEventReplayClient
    let topic: String
    let inbox = Inbox()
    /// Stored hashes recomputed and found equal, over every checkpoint.
    let checkedHashes = Mutex(0)
    let reader: Task<Void, Never>

    init(endpoint: String, replay: String, topic: String) throws {
        subscriber = try KVEventSubscriber(.init(endpoint: endpoint, topic: topic, pollInterval: .milliseconds(20)))
        self.replay = KVEventReplayClient(endpoint: replay)
        self.topic = topic
        let stream = subscriber.messages()
        let inbox = self.inbox
        reader = Task {
            for await m in stream { inbox.messages.withLock { $0.append(m) } }
        }
    }

    func close() {
        subscriber.close()
        reader.cancel()
    }

    /// PUB drops what it sends before a subscription reaches it: sends small requests
    /// until one's events arrive (the checkpoint fetches what was missed from the replay
    /// socket).
    func waitUntilSubscribed(_ url: String) async throws {
        let before = inbox.messages.withLock { $0.count }
        for attempt in 0..<200 {
            let prompt = (0..<17).map { 90_000 + 17 * attempt + $0 }
            let body = try JSONSerialization.data(withJSONObject: ["model": model, "prompt": prompt, "max_tokens": 1] as [String: Any])
            _ = try await TestHTTP.request(url + "/v1/completions", method: .POST, body: String(decoding: body, as: UTF8.self))
            try await Task.sleep(for: .milliseconds(50))
            if inbox.messages.withLock({ $0.count }) > before { return }
        }
        Issue.record("no KV event reached the subscriber of \(url)")
    }

    /// The engine's lives seen so far: a seq that goes back starts a new one.
    var lives: Int { inbox.messages.withLock { Self.split($0).count } }
    var lastBatch: KVEventBatch? { try? inbox.messages.withLock { $0.last }?.batch() }

    static func split(_ messages: [KVEventMessage]) -> [[KVEventMessage]] {
        var lives: [[KVEventMessage]] = []
        for m in messages {
            if let last = lives.last?.last, m.sequence > last.sequence { lives[lives.count - 1].append(m) } else { lives.append([m]) }
        }
        return lives
    }

    /// Waits until the subscriber has caught up with the engine, fills an early gap
    /// (batches sent before the subscription took hold) from the replay socket, checks seq
    /// runs 0…n without a gap, and compares the index built from this life's batches with
    /// `/debug/kv_blocks`. Events travel asynchronously, so it retries for up to 10 s.
    func checkpoint(_ server: SimEngineServer, url: String) async throws -> KVEventIndex {
        let publisher = try #require(server.kvEvents)
        var attempt = 0
        while true {
            attempt += 1
            let next = publisher.statistics.nextSequence
            var life = inbox.messages.withLock { Self.split($0).last ?? [] }
            if let first = life.first?.sequence, first > 0 {
                life = try await replay.replay(from: 0).filter { $0.sequence < first } + life
            }
            let seqs = life.map(\.sequence)
            var index = KVEventIndex()
            var checker = HashChecker()
            for m in life {
                let batch = try m.batch()
                checker.check(batch.events)
                index.apply(batch)
            }
            let truth = try await engineBlocks(url)
            let caught = next > 0 && seqs == Array(0..<next) && next == publisher.statistics.nextSequence
            let equal = index.hashes == Set(truth.hashes) && index.counts.values.reduce(0, +) == truth.physical_blocks
            if (caught && equal) || attempt == 500 {
                #expect(caught, "seq must run from 0 to \(next - 1) without a gap; got \(seqs.count) batches, last \(seqs.last ?? 0) (\(subscriber.statistics))")
                #expect(equal, "index: \(index.hashes.count) hashes in \(index.counts.values.reduce(0, +)) blocks; engine: \(truth.hashes.count) in \(truth.physical_blocks)")
                #expect(index.problems.isEmpty)
                // Replayed batches carry no topic; the subscriber's carry the engine's.
                let published = life.filter { !$0.topic.isEmpty }
                #expect(!published.isEmpty && published.allSatisfy { $0.topicString.hasPrefix(topic) })
                // The replay socket holds the very payloads the PUB socket sent.
                let replayed = try await replay.replay(from: 0)
                #expect(replayed.prefix(life.count).map(\.payload) == life.map(\.payload), "replayed batches differ from the published ones")
                checkedHashes.withLock { [n = checker.checked] in $0 += n }
                return index
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

final class Inbox: Sendable {
    let messages = Mutex<[KVEventMessage]>([])
}

struct KVBlocks: Decodable {
    var block_size: Int
    var physical_blocks: Int
    var hashes: [UInt64]
}

func engineBlocks(_ url: String) async throws -> KVBlocks {
    let r = try await TestHTTP.request(url + "/debug/kv_blocks")
    #expect(r.status == 200)
    return try JSONDecoder().decode(KVBlocks.self, from: Data(r.body.utf8))
}

/// Recomputes every stored block's hash from the event's tokens, parent and extra keys.
struct HashChecker {
    let hasher = VLLMBlockHasher(blockSize: 16, hashSeed: "0")
    var known: [UInt64: BlockHashDigest] = [:]
    var checked = 0

    mutating func check(_ events: [KVEvent]) {
        for case .blockStored(let e) in events {
            var parent: BlockHashDigest?
            if let p = e.parentBlockHash {
                parent = known[p.low64]
                #expect(parent != nil, "parent \(p.low64) never stored")
            }
            #expect(e.blockSize == 16 && e.tokenIDs.count == 16 * e.blockHashes.count && e.medium == "GPU")
            for (i, h) in e.blockHashes.enumerated() {
                let digest = hasher.hash(parent: parent, tokens: e.tokens(ofBlock: i), extraKeys: e.extraKeys?[i]?.compactMap(BlockHashExtraKey.init))
                #expect(h.low64 == digest.low64)
                if let d = h.digest { #expect(d == digest.bytes) }
                known[digest.low64] = digest
                parent = digest
                checked += 1
            }
        }
    }
}

/// `n` consecutive ports that are free now, below the kernel's ephemeral range: a ZMQ
/// subscriber that keeps reconnecting to an ephemeral port nobody listens on yet may end up
/// connected to itself (TCP self-connect) and never hear the publisher.
func consecutiveFreePorts(_ n: Int) throws -> Int {
    for _ in 0..<200 {
        let base = Int.random(in: 20_000..<(32_000 - n))
        if (base..<(base + n)).allSatisfy(portIsFree) { return base }
    }
    throw ExternalTool.Missing(description: "no \(n) consecutive free ports")
}

func portIsFree(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = INADDR_ANY
    return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
}



@Suite("KV events configuration")
struct KVEventsConfigTests {
    @Test("vLLM's JSON is read; engine i gets port + i, replay port + i and its pod in the topic")
    func perEngineSockets() throws {
        let c = try KVEventsConfig.parse(#"{"enable_kv_cache_events":true,"publisher":"zmq","endpoint":"tcp://*:5557","replay_endpoint":"tcp://*:5558","buffer_steps":10000,"topic":"kv@<pod>@<model>"}"#)
        #expect(c.publishes && c.format == .vllm032 && !c.hashBytes)
        let p = try c.publisherConfiguration(engine: 2, podName: "sim-2", model: "m")
        #expect(p.endpoint == "tcp://*:5559")
        #expect(p.replayEndpoint == "tcp://*:5560")
        #expect(p.topic == "kv@sim-2@m")
        #expect(try c.publisherConfiguration(engine: 0, podName: "sim-0", model: "m").endpoint == "tcp://*:5557")
        #expect(try KVEventsConfig.offset("ipc:///tmp/kv", by: 1) == "ipc:///tmp/kv_dp1")
        #expect(try KVEventsConfig.offset("tcp://127.0.0.1:*", by: 3) == "tcp://127.0.0.1:*")
        #expect(try !KVEventsConfig.parse(#"{"enable_kv_cache_events":false}"#).publishes)
        #expect(try KVEventsConfig.parse(#"{"enable_kv_cache_events":true}"#).endpoint == "tcp://*:5557")
    }

    @Test("bad configurations are refused with the field named", arguments: [
        #"[]"#, #"{"enable_kv_cache_events":1}"#, #"{"publisher":"kafka"}"#, #"{"endpoint":5}"#,
        #"{"buffer_steps":-1}"#, #"{"max_queue_size":0}"#, #"{"topik":"x"}"#,
    ])
    func refused(json: String) {
        #expect(throws: EngineError.self) { try KVEventsConfig.parse(json) }
        #expect(throws: EngineError.self) { try KVEventsConfig.offset("tcp://*:65535", by: 1) }
    }

    @Test("LoRA adapters are listed and served; cache_salt must be a non-empty string")
    func loraAndSalt() async throws {
        var engine = testEngineConfiguration()
        engine.loraAdapters = ["sql-lora"]
        try await withSimCluster(engine: engine) { _, urls in
            let models = try await TestHTTP.request(urls[0] + "/v1/models").json?["data"] as? [[String: Any]]
            #expect(models?.map { $0["id"] as? String } == [model, "sql-lora"])
            #expect(models?.last?["parent"] as? String == model)
            let ok = try await TestHTTP.postJSON(urls[0] + "/v1/completions", ["model": "sql-lora", "prompt": "hi", "max_tokens": 1, "cache_salt": "a"])
            #expect(ok.status == 200)
            for salt in ["", 5] as [Any] {
                let bad = try await TestHTTP.postJSON(urls[0] + "/v1/completions", ["model": model, "prompt": "hi", "max_tokens": 1, "cache_salt": salt])
                #expect(bad.status == 400)
            }
            let unknown = try await TestHTTP.postJSON(urls[0] + "/v1/completions", ["model": "other-lora", "prompt": "hi", "max_tokens": 1])
            #expect(unknown.status == 404)
        }
    }
}
