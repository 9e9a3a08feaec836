import Foundation
import KVRouteKVEvents
import KVRoutePrecise
import KVRouteTestSupport
import Testing

/// The ingest service against real `kvroute sim` processes publishing vLLM KV events over ZMQ:
/// the index's view of each engine equals the engine's own block set (`GET /debug/kv_blocks`)
/// after traffic with evictions, lost batches (replayed, or past the replay buffer), a cache
/// reset and an engine restart.
@Suite("Precise index service against simulated engines", .serialized)
struct PreciseIndexServiceTests {
    static let model = "tiny-llama"

    /// One `kvroute sim` process with its HTTP, event and replay ports.
    final class Sim: Sendable {
        let name: String
        let http: Int
        let events: Int
        let replay: Int
        let process: ManagedProcess

        init(name: String, bufferSteps: Int, extra: [String] = []) throws {
            self.name = name
            http = freePort()
            events = freePort()
            replay = freePort()
            let kv = #"{"enable_kv_cache_events":true,"publisher":"zmq","endpoint":"tcp://*:\#(events)","replay_endpoint":"tcp://*:\#(replay)","buffer_steps":\#(bufferSteps),"topic":"kv@<pod>@<model>"}"#
            process = try ManagedProcess(kvroute: [
                "sim", "--enable-prompt-tokens-details", "--port", "\(http)", "--model", PreciseIndexServiceTests.model, "--tokenizer", "bytes4",
                "--block-size", "16", "--num-gpu-blocks", "48", "--max-num-seqs", "8", "--hash-seed", "0",
                "--time-scale", "0", "--pod-name-prefix", name, "--log-level", "error", "--kv-events-config", kv,
            ] + extra, name: name)
        }

        var url: String { "http://127.0.0.1:\(http)" }

        var engine: PreciseIndexService.Engine {
            .init(name: name, endpoint: "tcp://127.0.0.1:\(events)", replayEndpoint: "tcp://127.0.0.1:\(replay)", model: PreciseIndexServiceTests.model)
        }

        /// The engine's cached block hashes.
        func blocks() async throws -> Set<UInt64> {
            struct Body: Decodable { var hashes: [UInt64] }
            let r = try await TestHTTP.request(url + "/debug/kv_blocks")
            return Set(try JSONDecoder().decode(Body.self, from: Data(r.body.utf8)).hashes)
        }
    }

    /// Concurrent token-id completions sharing prefixes: more blocks than the 48-block pool.
    static func traffic(_ url: String, rounds: Int, seed: UInt64) async throws {
        var rng = SplitMix(seed)
        for _ in 0..<rounds {
            let bodies: [[String: Any]] = (0..<6).map { k in
                let p = Int(rng.next() % 4)
                let prefix = (0..<(48 + 16 * p)).map { 10_000 * (p + 1) + $0 }
                let suffix = k == 5 ? [] : (0..<Int(rng.next() % 40)).map { _ in Int(rng.next() % 100_000) }
                return ["model": model, "prompt": prefix + suffix, "max_tokens": 20]
            }
            let payloads = try bodies.map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) }
            try await withThrowingTaskGroup(of: Int.self) { group in
                for body in payloads + [payloads[0]] {
                    group.addTask { try await TestHTTP.request(url + "/v1/completions", method: .POST, body: body).status }
                }
                for try await status in group { #expect(status == 200) }
            }
        }
    }

    /// Waits (up to 10 s) until the index's view of `sim` equals the engine's blocks.
    static func expectConverges(_ store: PreciseIndexStore, _ sim: Sim, _ step: String) async throws {
        var truth: Set<UInt64> = [], view: Set<UInt64> = []
        for _ in 0..<100 {
            truth = try await sim.blocks()
            view = store.hashes(engine: sim.name)
            if truth == view { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("\(step): \(sim.name) holds \(truth.count) blocks, the index \(view.count); missing \(truth.subtracting(view).count), extra \(view.subtracting(truth).count); feed \(String(describing: store.feedStatus(engine: sim.name)))")
    }

    @Test("the index equals every engine's blocks through evictions, lost batches, a reset and a restart", .enabled(if: ZMQ.available), .timeLimit(.minutes(3)))
    func followsEngines() async throws {
        let sims = [try Sim(name: "sim-a", bufferSteps: 10_000), try Sim(name: "sim-b", bufferSteps: 3)]
        defer { for s in sims { s.process.stop() } }
        let store = PreciseIndexStore()
        let service = PreciseIndexService(configuration: .init(engines: sims.map(\.engine)), store: store, logger: quietLogger)
        try await withServices([service]) {
            for s in sims { try await waitForOK(s.url + "/health", process: s.process) }
            // Connecting takes a moment; batches before it are replayed (seq > 0 at the start).
            try await Task.sleep(for: .milliseconds(300))

            // Evictions: more distinct blocks than the pool holds.
            try await Self.traffic(sims[0].url, rounds: 3, seed: 1)
            try await Self.traffic(sims[1].url, rounds: 2, seed: 2)
            for s in sims { try await Self.expectConverges(store, s, "after traffic") }
            #expect(store.statistics.removed > 0, "the small pool evicted blocks: \(store.statistics)")

            // Lost batches the replay buffer still holds: replayed.
            _ = try await TestHTTP.request(sims[0].url + "/admin/kv_events/lose?count=2", method: .POST)
            try await Self.traffic(sims[0].url, rounds: 2, seed: 3)
            try await Self.expectConverges(store, sims[0], "after a replayed gap")
            let a = try #require(store.feedStatus(engine: "sim-a"))
            #expect(a.gaps >= 1 && a.replayed >= 1 && a.dropped == 0, "\(a)")

            // Lost batches beyond a 3-batch replay buffer: the engine's entries are dropped,
            // then a cache reset brings the view back in line.
            _ = try await TestHTTP.request(sims[1].url + "/admin/kv_events/lose?count=6", method: .POST)
            try await Self.traffic(sims[1].url, rounds: 2, seed: 4)
            try await Task.sleep(for: .milliseconds(300))
            let b = try #require(store.feedStatus(engine: "sim-b"))
            #expect(b.gaps >= 1 && b.dropped >= 1, "\(b)")
            let partial = store.hashes(engine: "sim-b")
            #expect(partial.isSubset(of: try await sims[1].blocks()), "after a drop the view never holds a block the engine lacks")
            _ = try await TestHTTP.request(sims[1].url + "/reset_prefix_cache", method: .POST)
            try await Self.traffic(sims[1].url, rounds: 1, seed: 5)
            try await Self.expectConverges(store, sims[1], "after a reset")

            // A reset on the other engine.
            _ = try await TestHTTP.request(sims[0].url + "/reset_prefix_cache", method: .POST)
            try await Self.expectConverges(store, sims[0], "right after a reset")
            try await Self.traffic(sims[0].url, rounds: 1, seed: 6)
            try await Self.expectConverges(store, sims[0], "after a reset and traffic")

            // A restart: the new process numbers its batches from 0 again.
            try sims[1].process.restart()
            try await waitForOK(sims[1].url + "/health", process: sims[1].process)
            try await Task.sleep(for: .milliseconds(300))
            try await Self.traffic(sims[1].url, rounds: 1, seed: 7)
            try await Self.expectConverges(store, sims[1], "after a restart")
            #expect(try #require(store.feedStatus(engine: "sim-b")).restarts >= 1)
            try await Self.expectConverges(store, sims[0], "the other engine, at the end")
            for s in sims { print("\(s.name): \(String(describing: store.feedStatus(engine: s.name)))") }
            print("index: \(store.count) entries, \(store.statistics)")
        }
    }
}

/// libzmq is there when the test tools are installed (scripts/install-test-tools.sh).
enum ZMQ {
    static var available: Bool {
        if ExternalTool.peersRequired { return true }
        return (try? KVEventSubscriber(.init(endpoint: "inproc://kvroute-probe")))?.close() != nil
    }
}
