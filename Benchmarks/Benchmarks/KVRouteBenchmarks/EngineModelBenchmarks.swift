import Benchmark
import KVRouteEngineSim

/// A shared-prefix workload for one engine in virtual time: 16 groups × 2,048-token
/// prefixes, 128-token questions, 64 output tokens, arriving 2 ms apart.
func sharedPrefixArrivals(count: Int) -> [VirtualTimeDriver.Arrival] {
    let template = Llama3ChatTemplate()
    let prefixes = (0..<16).map { g in
        String(repeating: "Group \(g) shares this long instruction block. ", count: 180)
    }
    return (0..<count).map { i in
        let prompt = template.render([
            ChatTurn(role: "system", content: prefixes[i % 16]),
            ChatTurn(role: "user", content: "Question \(i): " + String(repeating: "why ", count: 120)),
        ])
        return VirtualTimeDriver.Arrival(time: Double(i) * 0.002, request: EngineRequest(promptTokens: prompt, maxTokens: 64))
    }
}

func engineModelBenchmarks() {
    let arrivals = sharedPrefixArrivals(count: 2_000)
    Benchmark(
        "Engine model: 2,000 shared-prefix requests in virtual time",
        configuration: .init(metrics: [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident], maxDuration: .seconds(20), maxIterations: 10)
    ) { benchmark in
        for _ in benchmark.scaledIterations {
            var engine = try! EngineCore(configuration: EngineConfiguration(numGPUBlocks: 8_192, hashSeed: "0"))
            let done = VirtualTimeDriver.run(&engine, arrivals: arrivals)
            blackHole(done.count)
        }
    }
}
