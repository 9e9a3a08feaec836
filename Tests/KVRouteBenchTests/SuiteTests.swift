import Foundation
import KVRouteCore
import KVRouteEngineSim
import Testing
@testable import KVRouteBench

func commonPrefix(_ x: [UInt32], _ y: [UInt32]) -> Int { zip(x, y).prefix { $0 == $1 }.count }

@Suite("Suite workloads")
struct SuiteWorkloadTests {
    @Test("every suite workload is the same for a seed and differs across seeds", arguments: BenchScenario.suiteNames)
    func deterministic(_ name: String) throws {
        let a = try #require(BenchScenario.named(name, size: 0.1, seed: 7)).workload.initialRequests()
        let b = try #require(BenchScenario.named(name, size: 0.1, seed: 7)).workload.initialRequests()
        let c = try #require(BenchScenario.named(name, size: 0.1, seed: 8)).workload.initialRequests()
        #expect(!a.isEmpty)
        #expect(a.map(\.tokens) == b.map(\.tokens))
        #expect(a.map(\.arrival) == b.map(\.arrival))
        #expect(a.map(\.tokens) != c.map(\.tokens))
        // Open loop, arrivals in order.
        #expect(a.allSatisfy { $0.arrival != nil })
        #expect(zip(a, a.dropFirst()).allSatisfy { $0.arrival! <= $1.arrival! })
    }

    @Test("agentic: sessions of a profile share its system prompt; each turn extends the last by the call and a tool output")
    func agentic() throws {
        var w = AgenticWorkload(sessions: 40, sessionRate: 4, seed: 3)
        w.systemTokens = 400
        let first = w.initialRequests()
        #expect(first.count == 40)
        let byProfile = Dictionary(grouping: first) { w.plan($0.client).profile }
        // Zipf: the most popular profile has the most sessions.
        #expect((byProfile[0]?.count ?? 0) == byProfile.values.map(\.count).max())
        for (_, sessions) in byProfile where sessions.count > 1 {
            #expect(commonPrefix(sessions[0].tokens, sessions[1].tokens) >= 400)
        }
        let answer = Array(OutputVocabulary.tokens.prefix(20))
        var r = first[0]
        var turns = 1
        while let next = w.next(after: r, answer: answer, id: 1_000 + turns) {
            #expect(Array(next.tokens.prefix(r.tokens.count + answer.count)) == r.tokens + answer)
            let added = next.tokens.count - r.tokens.count - answer.count
            #expect(added >= w.toolOutputTokens.lowerBound && added <= w.toolOutputTokens.upperBound + 16)
            #expect(w.toolSeconds.contains(try #require(next.arrival)))
            r = next
            turns += 1
        }
        #expect(turns == w.plan(0).turns)
        #expect(w.turns.contains(turns))
        // More load: more sessions over the same span.
        let scaled = try #require(w.scaled(by: 2) as? AgenticWorkload)
        #expect(scaled.sessions == 80 && scaled.sessionRate == 8)
    }

    @Test("rag: every prompt holds the shared instructions, then retrieved chunks; popular chunks lead often")
    func rag() {
        var w = RAGWorkload(requests: 200, qps: 10, seed: 2)
        w.systemTokens = 100
        w.chunkTokens = 64
        let reqs = w.initialRequests()
        #expect(reqs.count == 200)
        let base = reqs[0].tokens
        #expect(reqs.allSatisfy { commonPrefix($0.tokens, base) >= 100 })
        // Prompt length: instructions + 4 chunks + question (+ template).
        #expect(reqs.allSatisfy { $0.tokens.count >= 100 + 4 * 64 + 40 && $0.tokens.count <= 100 + 4 * 64 + 40 + 20 })
        let sharingBeyondInstructions = zip(reqs, reqs.dropFirst()).filter { commonPrefix($0.tokens, $1.tokens) >= 100 + 64 }.count
        #expect(sharingBeyondInstructions > 0 && sharingBeyondInstructions < 199)
    }

    @Test("long-context: each document is asked its questions; a document's prompts share the whole document")
    func longContext() {
        var w = LongContextWorkload(documents: 3, questionsPerDocument: 4, qps: 1, seed: 5)
        w.documentTokens = 1_000...4_000
        let reqs = w.initialRequests()
        #expect(reqs.count == 12)
        let lengths = w.documentLengths()
        #expect(lengths.allSatisfy { w.documentTokens.contains($0) })
        let byDoc = Dictionary(grouping: reqs) { $0.session!.split(separator: "-")[1] }
        #expect(byDoc.count == 3 && byDoc.values.allSatisfy { $0.count == 4 })
        for (doc, rs) in byDoc {
            #expect(commonPrefix(rs[0].tokens, rs[1].tokens) >= lengths[Int(doc)!])
        }
    }

    @Test("bursty: the long-run rate is the mean; bursts carry burstShare × burstFactor of the requests")
    func bursty() {
        let w = BurstyChatWorkload(requests: 3_000, qps: 10, seed: 4)
        let t = w.arrivals()
        #expect(t.count == 3_000)
        #expect(zip(t, t.dropFirst()).allSatisfy { $0 <= $1 })
        let mean = Double(t.count) / t.last!
        #expect(abs(mean - 10) / 10 < 0.1)
        let inBursts = t.filter { $0.truncatingRemainder(dividingBy: w.period) < w.burstShare * w.period }.count
        #expect(abs(Double(inBursts) / Double(t.count) - w.burstShare * w.burstFactor) < 0.05)
    }

    @Test("open-loop multi-turn: users arrive over time, rounds follow after a think time")
    func multiTurnOpen() throws {
        var w = MultiTurnWorkload(users: 10, rounds: 3, systemTokens: 100, questionTokens: 10, answerTokens: 5, userRate: 2, seed: 1)
        w.thinkTime = 1...5
        let first = w.initialRequests()
        #expect(w.concurrency == nil && first.allSatisfy { $0.arrival != nil })
        let next = try #require(w.next(after: first[0], answer: Array(OutputVocabulary.tokens.prefix(5)), id: 99))
        #expect(w.thinkTime.contains(try #require(next.arrival)))
        let scaled = try #require(w.scaled(by: 3) as? MultiTurnWorkload)
        #expect(scaled.users == 30 && scaled.userRate == 6)
    }

    @Test("the default scaling divides arrival times")
    func rateScaled() {
        let w = RAGWorkload(requests: 20, qps: 5, seed: 1)
        let a = w.initialRequests(), b = w.scaled(by: 4).initialRequests()
        #expect(a.map(\.tokens) == b.map(\.tokens))
        #expect(zip(a, b).allSatisfy { abs($0.arrival! / 4 - $1.arrival!) < 1e-12 })
    }
}

@Suite("Capacity, bounds and failures")
struct CapacityTests {
    static func smallCluster(engines: Int = 2) -> Simulation {
        Simulation(engines: engines, engine: EngineConfiguration(numGPUBlocks: 2_000, maxNumSeqs: 64, hashSeed: "0"))
    }

    @Test("capacity search: a saturated and an unsaturated probe bracket the capacity; half of it queues little, twice it queues a lot")
    func capacity() throws {
        var w = RAGWorkload(requests: 120, qps: 10, seed: 1)
        w.chunkTokens = 200
        w.outputTokens = 16
        let sim = Self.smallCluster()
        let result = try CapacitySearch(simulation: sim, policy: try .named("least-load")).run(w)
        #expect(result.rateScale > 0 && result.requestsPerS > 0)
        #expect(result.probes.contains { $0.saturated && $0.scale > result.rateScale && $0.scale <= result.rateScale * 2 + 1e-9 })
        #expect(result.probes.contains { !$0.saturated && $0.scale == result.rateScale })
        let limit = max(5 * result.lightLoadTTFTP90Ms, result.lightLoadTTFTP90Ms + 1000)
        let half = CapacitySearch.measure(try sim.run(w.scaled(by: result.rateScale / 2), policy: try .named("least-load")))
        let twice = CapacitySearch.measure(try sim.run(w.scaled(by: result.rateScale * 2), policy: try .named("least-load")))
        #expect(half.lateTTFTP90Ms <= limit)
        #expect(twice.lateTTFTP90Ms > limit)
        // Offered rate at capacity: ~(prompt tokens / prefill speed) per engine bounds it from above.
        #expect(result.requestsPerS < 2.0 / (LatencyModel().prefillPerToken * 600) * 1.5)
    }

    @Test("bounds are per policy: computed on the requests the policy issued; capacity applies when the cluster cache is too small")
    func perPolicyBounds() {
        let p = (0..<64).map { UInt32($0) }, q = (200..<264).map { UInt32($0) }
        func run(_ issued: [(tokens: [UInt32], answer: [UInt32])]) -> PolicyRun {
            let outcomes = issued.indices.map {
                RequestOutcome(id: $0, engine: 0, promptTokens: 64, cachedTokens: 0, completionTokens: 1, arrival: Double($0), ttft: 0.01, finish: Double($0) + 1, preemptions: 0, decisionSeconds: 1e-6)
            }
            return PolicyRun(policy: "x", outcomes: outcomes, engines: 1, issued: issued, rejected: 0)
        }
        let repeated = run([(p, []), (p, []), (p, [])]), distinct = run([(p, []), (q, []), (p, [])])
        let a = PolicyReport(run: repeated, clusterBlocks: 100), b = PolicyReport(run: distinct, clusterBlocks: 100)
        #expect(a.upperBoundHitRate == Bounds.upperBound(repeated.issued, blockSize: 16))
        #expect(b.upperBoundHitRate == Bounds.upperBound(distinct.issued, blockSize: 16))
        #expect(a.upperBoundHitRate > b.upperBoundHitRate)
        #expect(a.boundKind == "unlimited" && a.bound == a.upperBoundHitRate)
        // A cluster of 4 blocks cannot keep p while q passes through.
        let tight = PolicyReport(run: distinct, clusterBlocks: 4)
        #expect(tight.boundKind == "capacity" && tight.bound == tight.clusterCapacityHitRate && tight.bound < tight.upperBoundHitRate)
    }

    @Test("goodput counts answers within the TTFT objective")
    func goodput() {
        let o = [0.5, 1.5, 2.5, 3.5].enumerated().map { i, ttft in
            RequestOutcome(id: i, engine: 0, promptTokens: 10, cachedTokens: 0, completionTokens: 1, arrival: Double(i), ttft: ttft, finish: 4, preemptions: nil, decisionSeconds: nil)
        }
        let r = PolicyReport(run: PolicyRun(policy: "p", outcomes: o, engines: 1, issued: [], rejected: 0), ttftSLOMs: 2_000)
        #expect(r.sloAttainment == 0.5)
        #expect(r.goodputRequestsPerS == 0.5)  // 2 within the objective over 4 s
        #expect(r.preemptions == nil && r.decisionUsP50 == nil)
        #expect(BenchReport(workload: "w", mode: "live", engines: 1, numGPUBlocks: 1, maxNumSeqs: 1, blockSize: 16, settings: [:], ttftSLOMs: 2_000,
                            capacity: nil, results: [r], wallSeconds: 1).table().contains("n/a"))
    }

    @Test("an engine failing mid-run: its requests fail over, errors are counted, every request is answered")
    func failover() throws {
        let w = MultiTurnWorkload(users: 12, rounds: 3, systemTokens: 300, questionTokens: 20, answerTokens: 40, userRate: 6, seed: 2)
        var sim = Self.smallCluster(engines: 3)
        sim.failure = EngineFailure(engine: 0, atFraction: 0.5)
        let run = try sim.run(w, policy: try .named("round-robin"))
        #expect(run.outcomes.count == 36 && run.rejected == 0)
        #expect(run.errors > 0)
        let late = run.outcomes.filter { $0.arrival > 2.5 }
        #expect(!late.isEmpty && late.allSatisfy { $0.engine != 0 })
    }

    @Test("a slower engine takes longer steps")
    func heterogeneous() throws {
        let w = SharedPrefixWorkload(groups: 4, promptsPerGroup: 4, prefixTokens: 256, questionTokens: 16, outputTokens: 16, qps: 4, seed: 1)
        var sim = Self.smallCluster()
        sim.slowdowns = [0: 2]
        let run = try sim.run(w, policy: try .named("round-robin"))
        func meanE2E(_ e: Int) -> Double {
            let o = run.outcomes.filter { $0.engine == e }
            return o.map { $0.finish - $0.arrival }.reduce(0, +) / Double(o.count)
        }
        #expect(meanE2E(0) > 1.5 * meanE2E(1))
    }
}

@Suite("Topics demonstration")
struct TopicsTests {
    @Test("topics: questions of a topic share its preamble; users span topics; the table names each topic's engine")
    func topics() throws {
        let w = TopicsWorkload(topics: 3, questions: 30, users: 5, preambleTokens: 200, qps: 10, seed: 2)
        let reqs = w.initialRequests()
        let topicOf = w.topicOfRequest()
        #expect(reqs.count == 30 && Set(topicOf).count == 3)
        for t in 0..<3 {
            let same = reqs.filter { topicOf[$0.id] == t }
            #expect(same.count >= 2 && commonPrefix(same[0].tokens, same[1].tokens) >= 200)
        }
        let sessionsAcrossTopics = Dictionary(grouping: reqs) { $0.session! }.values.filter { Set($0.map { topicOf[$0.id] }).count > 1 }
        #expect(!sessionsAcrossTopics.isEmpty)
        let outcomes = reqs.map { r in
            RequestOutcome(id: r.id, engine: topicOf[r.id], promptTokens: 230, cachedTokens: r.id < 3 ? 0 : 208, completionTokens: 8,
                           arrival: r.arrival!, ttft: r.id < 3 ? 0.1 : 0.02, finish: r.arrival! + 0.1, preemptions: nil, decisionSeconds: nil)
        }
        let table = w.table(PolicyRun(policy: "p", outcomes: outcomes, engines: 3, issued: [], rejected: 0), engineNames: ["a:1", "b:2", "c:3"])
        #expect(table.contains("a:1") && table.contains("b:2") && table.contains("c:3"))
        #expect(table.contains("100%"))
        #expect(table.contains("3 misses"))
    }
}
