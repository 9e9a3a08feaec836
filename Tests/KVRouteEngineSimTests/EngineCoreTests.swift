import Testing
@testable import KVRouteEngineSim

/// A small, fast engine for rule-by-rule tests.
func testEngine(blocks: Int = 64, blockSize: Int = 16, maxNumSeqs: Int = 16, budget: Int = 2048, seed: String? = "0", metrics: Bool = false) throws -> EngineCore {
    let config = EngineConfiguration(
        model: "m", blockSize: blockSize, numGPUBlocks: blocks, maxNumSeqs: maxNumSeqs,
        maxNumBatchedTokens: budget, maxModelLen: 8192, hashSeed: seed, defaultMaxTokens: 8,
        latency: LatencyModel(jitter: 0))
    return try EngineCore(configuration: config, metrics: metrics ? EngineMetrics(configuration: config) : nil)
}

func tokens(_ n: Int, base: UInt32 = 1000) -> [UInt32] { (0..<UInt32(n)).map { base + $0 } }

/// Runs requests one after another to completion and returns their outcomes.
func runSequentially(_ engine: inout EngineCore, _ requests: [EngineRequest]) -> [FinishedRequest] {
    var out: [FinishedRequest] = []
    var now = 0.0
    for r in requests {
        _ = try! engine.add(r, at: now)
        while engine.hasWork {
            let s = engine.step(now: now)
            now = s.end
            out += s.outputs.compactMap(\.finished)
        }
    }
    return out
}

@Suite("Engine core")
struct EngineCoreTests {
    @Test("a repeated prompt hits every full block but the one holding the last token")
    func hitCappedAtPromptMinusOne() throws {
        var e = try testEngine()
        // 32 tokens = exactly two blocks: the second request may reuse only the first.
        let r = runSequentially(&e, [EngineRequest(promptTokens: tokens(32), maxTokens: 1),
                                     EngineRequest(promptTokens: tokens(32), maxTokens: 1)])
        #expect(r[0].cachedTokens == 0)
        #expect(r[1].cachedTokens == 16)
        // 40 tokens: two full blocks hashed, both reusable (40 − 1 ≥ 32).
        var f = try testEngine()
        let q = runSequentially(&f, [EngineRequest(promptTokens: tokens(40), maxTokens: 1),
                                     EngineRequest(promptTokens: tokens(40), maxTokens: 1)])
        #expect(q[1].cachedTokens == 32)
    }

    @Test("only full blocks are hashed: a 15-token prompt never hits")
    func partialBlocksNotHashed() throws {
        var e = try testEngine()
        let r = runSequentially(&e, [EngineRequest(promptTokens: tokens(15), maxTokens: 1),
                                     EngineRequest(promptTokens: tokens(15), maxTokens: 1)])
        #expect(r[1].cachedTokens == 0)
    }

    @Test("hits stop at the first differing block")
    func prefixOnly() throws {
        var e = try testEngine()
        var other = tokens(64)
        other[20] = 7  // differs inside block 1
        let r = runSequentially(&e, [EngineRequest(promptTokens: tokens(64), maxTokens: 1),
                                     EngineRequest(promptTokens: other, maxTokens: 1)])
        #expect(r[1].cachedTokens == 16)
    }

    @Test("blocks filled by decode are registered, so a follow-up quoting the answer hits them")
    func decodeBlocksRegistered() throws {
        var e = try testEngine()
        let prompt = tokens(16)
        _ = try e.add(EngineRequest(promptTokens: prompt, maxTokens: 20), at: 0)
        var answer: [UInt32] = []
        var now = 0.0
        while e.hasWork {
            let s = e.step(now: now)
            now = s.end
            answer += s.outputs.compactMap(\.token)
        }
        #expect(answer.count == 20)
        // prompt (16) + answer (20) = 36 tokens: blocks 0 and 1 full (the second filled by decode).
        let follow = prompt + answer + tokens(30, base: 5000)
        let r = runSequentially(&e, [EngineRequest(promptTokens: follow, maxTokens: 1)])
        #expect(r[0].cachedTokens == 32)
    }

    @Test("blocks are registered when scheduled: a twin admitted in the same step hits them")
    func registeredWhenScheduled() throws {
        var e = try testEngine()
        _ = try e.add(EngineRequest(promptTokens: tokens(64), maxTokens: 1), at: 0)
        _ = try e.add(EngineRequest(promptTokens: tokens(64), maxTokens: 1), at: 0)
        let s = e.step(now: 0)
        let done = s.outputs.compactMap(\.finished).sorted { $0.id < $1.id }
        #expect(done.count == 2)
        #expect(done[0].cachedTokens == 0)
        #expect(done[1].cachedTokens == 48)
    }

    @Test("an old prefix stops hitting once newer prefixes push it out (LRU)")
    func lruEviction() throws {
        var e = try testEngine(blocks: 8)
        // Each 64-token prompt fills 4 blocks; 8 blocks hold two prefixes.
        let a = EngineRequest(promptTokens: tokens(64, base: 1), maxTokens: 1)
        let b = EngineRequest(promptTokens: tokens(64, base: 10_000), maxTokens: 1)
        let c = EngineRequest(promptTokens: tokens(64, base: 20_000), maxTokens: 1)
        let r1 = runSequentially(&e, [a, a])
        #expect(r1[1].cachedTokens == 48)
        let r2 = runSequentially(&e, [b, c, a])
        #expect(r2[2].cachedTokens == 0)
        #expect(e.pool.evictions > 0)
        // The most recent prefix is still there.
        let r3 = runSequentially(&e, [c])
        #expect(r3[0].cachedTokens > 0)
    }

    @Test("when blocks run out running requests are preempted, not failed")
    func preemption() throws {
        var e = try testEngine(blocks: 20, maxNumSeqs: 8)
        // 8 requests of 32 prompt + 64 output tokens need 6 blocks each at the end: 48 > 20.
        var ids: [EngineRequestID] = []
        for i in 0..<8 {
            ids.append(try e.add(EngineRequest(promptTokens: tokens(32, base: UInt32(i * 1000 + 1)), maxTokens: 64), at: 0))
        }
        var finished: [FinishedRequest] = []
        var now = 0.0
        var steps = 0
        while e.hasWork && steps < 100_000 {
            let s = e.step(now: now)
            now = s.end
            finished += s.outputs.compactMap(\.finished)
            steps += 1
        }
        #expect(finished.count == 8)
        #expect(finished.allSatisfy { $0.completionTokens == 64 })
        #expect(e.stats.preemptions > 0)
        #expect(finished.contains { $0.preemptions > 0 })
        #expect(e.pool.usage == 0)
    }

    @Test("requests that can never fit are rejected up front")
    func tooLarge() throws {
        var e = try testEngine(blocks: 4)
        #expect(throws: EngineError.self) { try e.add(EngineRequest(promptTokens: tokens(100), maxTokens: 1), at: 0) }
        #expect(throws: EngineError.self) { try e.add(EngineRequest(promptTokens: tokens(10), maxTokens: 0), at: 0) }
        #expect(throws: EngineError.self) { try e.add(EngineRequest(promptTokens: tokens(10), maxTokens: 9000), at: 0) }
        #expect(throws: EngineError.self) { try e.add(EngineRequest(promptTokens: [], maxTokens: 1), at: 0) }
    }

    @Test("the hash seed decides whether engines agree on block hashes")
    func hashSeed() throws {
        let a = BlockHasher(blockSize: 16, hashSeed: "42")
        let b = BlockHasher(blockSize: 16, hashSeed: "42")
        let c = BlockHasher(blockSize: 16, hashSeed: nil)
        let t = tokens(16)
        #expect(a.hash(parent: nil, tokens: t[...]) == b.hash(parent: nil, tokens: t[...]))
        #expect(a.hash(parent: nil, tokens: t[...]) != c.hash(parent: nil, tokens: t[...]))
        // Chained: the same block after a different parent hashes differently.
        let p1 = a.hash(parent: nil, tokens: tokens(16, base: 1)[...])
        let p2 = a.hash(parent: nil, tokens: tokens(16, base: 2)[...])
        #expect(a.hash(parent: p1, tokens: t[...]) != a.hash(parent: p2, tokens: t[...]))
    }

    @Test("prefix-cache counters equal the usage figures")
    func statsMatchUsage() throws {
        var e = try testEngine(metrics: true)
        let r = runSequentially(&e, [EngineRequest(promptTokens: tokens(100), maxTokens: 2),
                                     EngineRequest(promptTokens: tokens(100), maxTokens: 2)])
        #expect(e.stats.prefixQueries == r.map(\.promptTokens).reduce(0, +))
        #expect(e.stats.prefixHits == r.map(\.cachedTokens).reduce(0, +))
        let text = String(decoding: e.metrics!.render(), as: UTF8.self)
        #expect(text.contains("vllm:prefix_cache_queries_total{model_name=\"m\",engine=\"0\"} 200"))
        #expect(text.contains("vllm:prefix_cache_hits_total{model_name=\"m\",engine=\"0\"} 96"))
    }

    @Test("TTFT is overhead plus uncached tokens × prefill time; decode steps grow with the batch")
    func latencyModel() throws {
        var e = try testEngine(budget: 8192)
        let l = e.configuration.latency
        let r = runSequentially(&e, [EngineRequest(promptTokens: tokens(1000), maxTokens: 1),
                                     EngineRequest(promptTokens: tokens(1000), maxTokens: 1)])
        #expect(abs(r[0].timeToFirstToken - (l.stepOverhead + 1000 * l.prefillPerToken)) < 1e-9)
        // 992 cached: only 8 tokens computed.
        #expect(abs(r[1].timeToFirstToken - (l.stepOverhead + 8 * l.prefillPerToken)) < 1e-9)
        #expect(l.stepDuration(prefillTokens: 0, decodingSequences: 64) > l.stepDuration(prefillTokens: 0, decodingSequences: 1))
    }

    @Test("the same prompt gives the same answer; a different one usually does not")
    func deterministicOutput() throws {
        var e = try testEngine()
        func answer(_ p: [UInt32]) throws -> [UInt32] {
            _ = try e.add(EngineRequest(promptTokens: p, maxTokens: 8), at: 0)
            var out: [UInt32] = []
            var now = 0.0
            while e.hasWork { let s = e.step(now: now); now = s.end; out += s.outputs.compactMap(\.token) }
            return out
        }
        #expect(try answer(tokens(40)) == answer(tokens(40)))
        #expect(try answer(tokens(40)) != answer(tokens(41)))
    }

    @Test("the virtual-time driver finishes every request it admits")
    func virtualTime() throws {
        var e = try testEngine(blocks: 256, maxNumSeqs: 32)
        let arrivals = (0..<200).map { i in
            VirtualTimeDriver.Arrival(time: Double(i) * 0.001, request: EngineRequest(promptTokens: tokens(64 + i % 50, base: UInt32(i % 7) * 100), maxTokens: 4))
        }
        let done = VirtualTimeDriver.run(&e, arrivals: arrivals)
        #expect(done.count == 200)
        #expect(e.stats.prefixHits > 0)
    }
}
