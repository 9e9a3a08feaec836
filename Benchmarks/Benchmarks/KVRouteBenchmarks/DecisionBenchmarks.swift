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

/// A warm router: a Scheduler whose prefix index holds every tenant's chain, and the
/// requests it keeps deciding. Built once per benchmark (in `setup`), so each sample is one
/// steady-state decision (prompt hashing, index lookups, scorers, picker, admission and the
/// finish that releases it), not the configuration parsing and prompt building around it.
final class DecisionFixture: @unchecked Sendable {
    let scheduler: Scheduler
    let candidates: [EndpointSnapshot]
    let requests: [InferenceRequest]
    var next = 0

    init(tokens: Int, endpoints: Int) throws {
        scheduler = try Scheduler(config: .kvrouteDefault, randomSeed: 1)
        candidates = snapshots(endpoints)
        requests = KVRouteBenchmarks.requests(tokens: tokens)
        for r in requests {
            let result = try scheduler.schedule(r, candidates: candidates)
            scheduler.requestFinished(requestID: r.requestID, servedBy: result.primary)
        }
    }

    func decideOnce() throws {
        let r = requests[next % requests.count]
        next += 1
        let result = try scheduler.schedule(r, candidates: candidates)
        scheduler.requestFinished(requestID: r.requestID, servedBy: result.primary)
        blackHole(result)
    }
}

nonisolated(unsafe) var decisionFixture: DecisionFixture?

func decisionBenchmarks() {
    for tokens in [1_000, 8_000, 32_000, 128_000] {
        for endpoints in [4, 16, 64] {
            Benchmark(
                "Decision (kvroute default): \(tokens / 1000)k-token prompt, \(endpoints) endpoints",
                configuration: .init(
                    metrics: [.wallClock, .mallocCountTotal], warmupIterations: 100, maxDuration: .seconds(2), maxIterations: 5_000,
                    // A shared 2-core machine is noisy: flag a time only when it grows by a
                    // quarter at the median or doubles at p99; allocations are deterministic.
                    thresholds: [
                        .wallClock: .init(relative: [.p50: 25, .p99: 100]),
                        .mallocCountTotal: .init(relative: [.p50: 5, .p99: 5], absolute: [.p50: 2, .p99: 2]),
                    ]),
                closure: { benchmark in
                    for _ in benchmark.scaledIterations { try decisionFixture!.decideOnce() }
                },
                setup: { decisionFixture = try DecisionFixture(tokens: tokens, endpoints: endpoints) },
                teardown: { decisionFixture = nil })
        }
    }
}
