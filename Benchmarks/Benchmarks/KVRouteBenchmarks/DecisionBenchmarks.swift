import Benchmark
import KVRouteCore

/// Endpoints with a little load each, as a router sees them between scrapes.
func snapshots(_ n: Int) -> [EndpointSnapshot] {
    (0..<n).map { i in
        EndpointSnapshot(
            address: EndpointAddress(host: "10.0.\(i / 250).\(i % 250 + 1)", port: 8000), labels: ["llm-d.ai/role": "decode"],
            waitingRequests: i % 3, runningRequests: 4 + i % 5, kvCacheUsage: 0.2 + Double(i % 4) * 0.1, inFlight: 0,
            healthy: true, metricsAge: 0.02, maxNumSeqs: 256)
    }
}

/// Eight chat requests sharing nothing but their length: a system prompt of about `tokens`
/// tokens (4 characters each) and a short question.
func requests(tokens: Int) -> [InferenceRequest] {
    (0..<8).map { g in
        let unit = "Tenant \(g) keeps its own policy text here for the assistant to follow. "
        let system = String(repeating: unit, count: max(1, tokens * 4 / unit.utf8.count))
        return InferenceRequest(
            requestID: "r\(g)", model: "meta-llama/Llama-3.2-3B-Instruct", apiKind: .chatCompletions,
            prompt: .messages([ChatMessage(role: "system", content: system), ChatMessage(role: "user", content: "What now?")]),
            sessionKey: "s\(g)", headers: [:], subsetHint: nil)
    }
}

func decisionBenchmarks() {
    for tokens in [1_000, 8_000, 32_000, 128_000] {
        for endpoints in [4, 16, 64] {
            Benchmark(
                "Decision (kvroute default): \(tokens / 1000)k-token prompt, \(endpoints) endpoints",
                configuration: .init(metrics: [.wallClock, .mallocCountTotal], maxDuration: .seconds(2), maxIterations: 2_000)
            ) { benchmark in
                let scheduler = try Scheduler(config: .kvrouteDefault, randomSeed: 1)
                let candidates = snapshots(endpoints)
                let reqs = requests(tokens: tokens)
                // Warm the prefix index so lookups walk real chains.
                for r in reqs { _ = try scheduler.schedule(r, candidates: candidates); scheduler.requestFinished(requestID: r.requestID, servedBy: nil) }
                benchmark.startMeasurement()
                for i in benchmark.scaledIterations {
                    let r = reqs[i % reqs.count]
                    let result = try scheduler.schedule(r, candidates: candidates)
                    scheduler.requestFinished(requestID: r.requestID, servedBy: result.primary)
                    blackHole(result)
                }
            }
        }
    }
}
