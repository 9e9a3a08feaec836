import Foundation
import KVRouteDataLayer
import KVRouteEngineSim
import KVRouteKVEvents
import KVRoutePrecise
import KVRouteTestSupport
import Prometheus
import Testing

/// A picker whose hashing differs from its engines' is told so: from `vllm:cache_config_info`
/// (block size, hash algorithm, prefix caching) and from KV events that never carry the
/// hashes of the requests it routed (a different PYTHONHASHSEED shows nowhere else).
@Suite("Hashing mismatch detection", .serialized)
struct HashingMismatchTests {
    /// `vllm:cache_config_info`'s labels in a metrics page.
    static func cacheConfigLabels(_ page: String) -> [String: String] {
        let sample = PrometheusText.parse(page[...]) { $0 == "vllm:cache_config_info" }.first
        var out: [String: String] = [:]
        for (k, v) in sample?.labels ?? [:] { out[String(k)] = String(v) }
        return out
    }

    @Test("cache_config_info: block size, algorithm and prefix caching are compared; absent labels are not differences")
    func cacheConfigFields() throws {
        let picker = HashingSettings(blockSize: 16)
        #expect(picker.mismatches(cacheConfigLabels: ["block_size": "16", "prefix_caching_hash_algo": "sha256_cbor", "enable_prefix_caching": "True"], engine: "e").isEmpty)
        #expect(picker.mismatches(cacheConfigLabels: [:], engine: "e").isEmpty)
        let found = picker.mismatches(cacheConfigLabels: ["block_size": "32", "prefix_caching_hash_algo": "sha256", "enable_prefix_caching": "False"], engine: "e")
        #expect(found.map(\.field) == [.blockSize, .hashAlgorithm, .prefixCaching])
        #expect(found[1].message.contains("--prefix-caching-hash-algo sha256_cbor"))

        // The simulator's page, as vLLM exports it.
        var engine = EngineConfiguration(blockSize: 32)
        engine.enablePrefixCaching = true
        let page = String(decoding: EngineMetrics(configuration: engine).render(), as: UTF8.self)
        let labels = Self.cacheConfigLabels(page)
        #expect(labels["block_size"] == "32" && labels["prefix_caching_hash_algo"] == "sha256_cbor")
        #expect(picker.mismatches(cacheConfigLabels: labels, engine: "sim").map(\.field) == [.blockSize])
    }

    @Test("hash agreement: unknown without evidence, agrees on one confirmed block, disagrees when none ever shows")
    func agreementVerdicts() {
        var a = HashAgreement()
        #expect(a.verdict == .unknown)
        for i in 0..<UInt64(HashAgreement.minimumRouted) { a.routed(firstBlock: 1_000 + i, held: false) }
        for i in 0..<UInt64(HashAgreement.minimumStored) { a.stored(i) }
        #expect(a.verdict == .disagrees)
        a.stored(1_003)
        #expect(a.verdict == .agrees && a.confirmed == 1)
        var b = HashAgreement()
        b.routed(firstBlock: 5, held: true)
        #expect(b.verdict == .agrees)
    }

    @Test("real sims: a different hash seed is caught from events, a different block size from cache_config_info; metrics and logs say so",
          .enabled(if: ZMQ.available), .timeLimit(.minutes(2)))
    func liveEngines() async throws {
        let same = try PreciseIndexServiceTests.Sim(name: "same-seed", bufferSteps: 1_000)
        let other = try PreciseIndexServiceTests.Sim(name: "other-seed", bufferSteps: 1_000, extra: ["--hash-seed", "7"])
        defer { for s in [same, other] { s.process.stop() } }
        let registry = PrometheusCollectorRegistry()
        let metrics = PreciseIndexMetrics(registry: registry, engines: [same.name, other.name])
        let store = PreciseIndexStore()
        let picker = HashingSettings(blockSize: 16, hashSeed: "0")
        let service = PreciseIndexService(
            configuration: .init(engines: [same.engine, other.engine], hashing: picker), store: store, metrics: metrics, logger: quietLogger)
        let hasher = VLLMBlockHasher(blockSize: picker.blockSize, hashSeed: picker.hashSeed)
        try await withServices([service]) {
            for s in [same, other] { try await waitForOK(s.url + "/health", process: s.process) }
            try await Task.sleep(for: .milliseconds(300))
            for i in 0..<10 {
                let prompt = (0..<40).map { UInt32(20_000 + 1_000 * i + $0) }
                for s in [same, other] {
                    // The picker's own hashing of the request it routes.
                    store.routed(blockHashes: hasher.blockHashes(tokens: prompt).map(\.low64), engine: s.name)
                    let r = try await TestHTTP.postJSON(s.url + "/v1/completions", ["model": PreciseIndexServiceTests.model, "prompt": prompt.map { Int($0) }, "max_tokens": 2])
                    #expect(r.status == 200)
                }
            }
            for _ in 0..<50 where store.feedStatus(engine: other.name)?.hashes.verdict != .disagrees {
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(store.feedStatus(engine: same.name)?.hashes.verdict == .agrees, "\(String(describing: store.feedStatus(engine: same.name)?.hashes))")
            #expect(store.feedStatus(engine: other.name)?.hashes.verdict == .disagrees, "\(String(describing: store.feedStatus(engine: other.name)?.hashes))")

            // Block size: the engines run 16; a picker set to 32 is told by their metrics.
            let page = try await TestHTTP.request(same.url + "/metrics").body
            let wrong = PreciseIndexService(configuration: .init(engines: [], hashing: HashingSettings(blockSize: 32)), store: store, metrics: metrics, logger: quietLogger)
            let found = wrong.checkCacheConfig(labels: Self.cacheConfigLabels(page), engine: same.name)
            #expect(found.map(\.field) == [.blockSize])
            #expect(service.checkCacheConfig(labels: Self.cacheConfigLabels(page), engine: other.name).isEmpty, "seed differences do not show in metrics")
        }
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        let text = String(decoding: buffer, as: UTF8.self)
        #expect(text.contains(#"kvroute_precise_hashing_mismatch{engine="other-seed",field="hashes"} 1"#), "\(text.split(separator: "\n").filter { $0.contains("mismatch{") })")
        #expect(text.contains(#"kvroute_precise_hashing_mismatch{engine="same-seed",field="hashes"} 0"#))
        #expect(text.contains(#"kvroute_precise_hashing_mismatch{engine="same-seed",field="block_size"} 1"#))
    }
}
