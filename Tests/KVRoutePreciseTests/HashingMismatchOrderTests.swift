import Foundation
import KVRouteEngineSim
import KVRouteKVEvents
import KVRoutePrecise
import KVRouteTestSupport
import Prometheus
import Testing

/// The hash-disagreement verdict can turn at a routed request rather than at a batch: with
/// long prompts an engine stores the evidence's blocks after its first requests, and the
/// eighth routed request is what completes it. The next batch must still report it (real
/// vLLM with a picker set to block size 16 against engines at 32 went unreported).
@Suite("Hashing mismatch detection, verdict turned by routing", .serialized)
struct HashingMismatchOrderTests {
    @Test("a disagreement completed by a routed request is reported at the next batch",
          .enabled(if: ZMQ.available), .timeLimit(.minutes(2)))
    func reportedWhenRoutingCompletesTheEvidence() async throws {
        let other = try PreciseIndexServiceTests.Sim(name: "seed-7", bufferSteps: 1_000, extra: ["--hash-seed", "7"])
        defer { other.process.stop() }
        let registry = PrometheusCollectorRegistry()
        let metrics = PreciseIndexMetrics(registry: registry, engines: [other.name])
        let store = PreciseIndexStore()
        let picker = HashingSettings(blockSize: 16, hashSeed: "0")
        let service = PreciseIndexService(configuration: .init(engines: [other.engine], hashing: picker), store: store, metrics: metrics, logger: quietLogger)
        let hasher = VLLMBlockHasher(blockSize: picker.blockSize, hashSeed: picker.hashSeed)
        @Sendable func prompt(_ i: Int) -> [UInt32] { (0..<320).map { UInt32(30_000 + 1_000 * i + $0) } }
        @Sendable func send(_ i: Int) async throws {
            let r = try await TestHTTP.postJSON(other.url + "/v1/completions", ["model": PreciseIndexServiceTests.model, "prompt": prompt(i).map { Int($0) }, "max_tokens": 2])
            #expect(r.status == 200)
        }
        @Sendable func routed(_ i: Int) { store.routed(blockHashes: hasher.blockHashes(tokens: prompt(i)).map(\.low64), engine: other.name) }
        @Sendable func mismatch() -> String {
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            return String(decoding: buffer, as: UTF8.self).split(separator: "\n").filter { $0.contains(#"field="hashes""#) }.joined()
        }

        try await withServices([service]) {
            try await waitForOK(other.url + "/health", process: other.process)
            try await Task.sleep(for: .milliseconds(300))
            // One routed request, then its 20 blocks stored: enough stored evidence, too few routed.
            routed(0)
            try await send(0)
            for _ in 0..<50 where (store.feedStatus(engine: other.name)?.hashes.storedSinceRouted ?? 0) < HashAgreement.minimumStored {
                try await Task.sleep(for: .milliseconds(100))
            }
            try #require((store.feedStatus(engine: other.name)?.hashes.storedSinceRouted ?? 0) >= HashAgreement.minimumStored)
            #expect(mismatch().hasSuffix(" 0.0"), "\(mismatch())")
            // Routing alone completes the evidence; no batch has seen the verdict turn yet.
            for i in 1..<HashAgreement.minimumRouted { routed(i) }
            #expect(store.feedStatus(engine: other.name)?.hashes.verdict == .disagrees)
            // The next batch reports it.
            try await send(1)
            for _ in 0..<50 where !mismatch().hasSuffix(" 1.0") { try await Task.sleep(for: .milliseconds(100)) }
            #expect(mismatch().hasSuffix(" 1.0"), "\(mismatch())")
        }
    }
}
