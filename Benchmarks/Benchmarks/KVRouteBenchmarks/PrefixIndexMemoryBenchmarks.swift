import Benchmark
import KVRouteCore

import MallocInfo

#if canImport(Glibc)
import Glibc
#endif

/// Bytes the C allocator has handed out and not taken back (heap and mmap'd blocks).
func allocatedBytes() -> Int { Int(kvroute_allocated_bytes()) }

/// The prefix index's memory per (endpoint, block): a kvroute default Scheduler over
/// `endpoints` endpoints is fed prompts of 256 unique blocks until every endpoint's index
/// is full (`lruCapacityPerServer`, 31,250) and has evicted, every request finished; the
/// allocator's growth over the Scheduler with an empty index, divided by the blocks held.
func prefixIndexMemoryBenchmarks() {
    let endpoints = 8
    let perEndpoint = 31_250
    Benchmark(
        "Prefix index memory: \(endpoints) endpoints filled to \(perEndpoint) blocks each",
        configuration: .init(
            metrics: [.custom("bytes per entry", polarity: .prefersSmaller, useScalingFactor: false)],
            warmupIterations: 0, maxDuration: .seconds(120), maxIterations: 1,
            thresholds: [.custom("bytes per entry", polarity: .prefersSmaller, useScalingFactor: false): .init(relative: [.p50: 5], absolute: [:])])
    ) { benchmark in
        let candidates = snapshots(endpoints)
        let filler = String(repeating: "0123456789abcdef", count: 1_100)  // > 256 blocks of 64 characters
        let requests = endpoints * perEndpoint * 5 / 4 / 256
        let scheduler = try Scheduler(config: .kvrouteDefault, randomSeed: 1)
        let before = allocatedBytes()
        for i in 0..<requests {
            let r = InferenceRequest(
                requestID: "m\(i)", model: "meta-llama/Llama-3.2-3B-Instruct", apiKind: .completions,
                prompt: .text("\(i):" + filler), sessionKey: nil, headers: [:], subsetHint: nil)
            let result = try scheduler.schedule(r, candidates: candidates)
            scheduler.requestFinished(requestID: r.requestID, servedBy: result.primary)
        }
        let grown = allocatedBytes() - before
        let entries = scheduler.prefixIndexSize
        let perEntry = Double(grown) / Double(max(entries, 1))
        // On stderr: the benchmark runner keeps stdout for itself.
        var line = "prefix index: \(entries) (endpoint, block) entries (capacity \(endpoints * perEndpoint)), \(grown) bytes allocated, \((perEntry * 10).rounded() / 10) bytes per entry\n"
        line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
        benchmark.measurement(.custom("bytes per entry", polarity: .prefersSmaller, useScalingFactor: false), Int(perEntry.rounded(.up)))
        blackHole(scheduler)
    }
}
