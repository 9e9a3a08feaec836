import Testing
@testable import KVRouteEngineSim

/// Engine behaviours checked against vLLM 0.32's source (v1/core/block_pool.py,
/// v1/core/sched/scheduler.py, v1/metrics), and the older behaviours kept behind settings.
@Suite("Engine fidelity to vLLM")
struct VLLMFidelityTests {
    static func engine(blocks: Int = 64, metrics: Bool = true, _ change: (inout EngineConfiguration) -> Void = { _ in }) throws -> EngineCore {
        var config = EngineConfiguration(
            model: "m", blockSize: 16, numGPUBlocks: blocks, maxNumSeqs: 16, maxNumBatchedTokens: 2048,
            maxModelLen: 8192, hashSeed: "0", defaultMaxTokens: 8, latency: LatencyModel(jitter: 0))
        change(&config)
        return try EngineCore(configuration: config, metrics: metrics ? EngineMetrics(configuration: config) : nil)
    }

    static func metricsText(_ e: EngineCore) -> String { String(decoding: e.metrics!.render(), as: UTF8.self) }

    static func value(_ text: String, _ name: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(name + "{") || $0.hasPrefix(name + " ") }
            .flatMap { $0.split(separator: " ").last.flatMap { Double($0) } }
    }

    @Test("KV usage is used / (N − 1): the null block is neither free nor used")
    func usageExcludesNullBlock() throws {
        var e = try Self.engine(blocks: 8)
        _ = try e.add(EngineRequest(promptTokens: tokens(40), maxTokens: 4), at: 0)
        _ = e.step(now: 0)
        // 41 tokens in 3 blocks of 16, out of 7 usable.
        #expect(abs(e.pool.usage - 3.0 / 7.0) < 1e-12)
        #expect(abs((Self.value(Self.metricsText(e), "vllm:kv_cache_usage_perc") ?? 0) - 3.0 / 7.0) < 1e-12)
        // A request needing all 8 blocks can never run: one is the null block.
        var rejected = false
        do { _ = try e.add(EngineRequest(promptTokens: tokens(120), maxTokens: 8), at: 0) } catch { rejected = true }
        #expect(rejected)
    }

    @Test("freed blocks never hashed go to the head of the free queue; hashed ones to the tail", arguments: [true, false])
    func unhashedBlocksFirst(headFirst: Bool) throws {
        var e = try Self.engine(blocks: 8) { $0.freeUnhashedBlocksFirst = headFirst }
        // 40 prompt tokens + 1 output: blocks 1 and 2 full (hashed), block 3 partial (never hashed).
        _ = runSequentially(&e, [EngineRequest(promptTokens: tokens(40), maxTokens: 1)])
        let order = e.pool.freeQueueOrder
        #expect(order.suffix(2) == [2, 1])
        if headFirst {
            #expect(order == [3, 4, 5, 6, 7, 2, 1])
        } else {
            #expect(order == [4, 5, 6, 7, 3, 2, 1])
        }
    }

    @Test("reset_prefix_cache is refused while a request holds blocks, unless running requests are preempted")
    func resetRefusedWhileInUse() throws {
        var e = try Self.engine()
        _ = try e.add(EngineRequest(promptTokens: tokens(64), maxTokens: 20), at: 0)
        _ = e.step(now: 0)
        #expect(e.numRunning == 1)
        let cached = e.pool.cachedHashCount
        #expect(cached > 0)
        let refused = e.resetPrefixCache()
        #expect(!refused)
        #expect(e.pool.cachedHashCount == cached)
        let forced = e.resetPrefixCache(resetRunningRequests: true)
        #expect(forced)
        #expect(e.pool.cachedHashCount == 0 && e.numRunning == 0 && e.numWaiting == 1)
        // The preempted request is recomputed and finishes.
        var now = 0.0
        var finished: [FinishedRequest] = []
        while e.hasWork {
            let s = e.step(now: now)
            now = s.end
            finished += s.outputs.compactMap(\.finished)
        }
        #expect(finished.count == 1 && finished[0].completionTokens == 20 && finished[0].preemptions == 1)
        let idle = e.resetPrefixCache()
        #expect(idle)
    }

    /// Request A fills most of 7 usable blocks and grows; B waits for blocks for many steps.
    static func waitingForBlocks(_ counting: PrefixCacheCounting) throws -> EngineCore {
        var e = try Self.engine(blocks: 8) { $0.prefixCacheCounting = counting }
        _ = try e.add(EngineRequest(promptTokens: tokens(80), maxTokens: 30), at: 0)
        _ = try e.add(EngineRequest(promptTokens: tokens(64, base: 5000), maxTokens: 2), at: 0)
        var now = 0.0
        while e.hasWork { now = e.step(now: now).end }
        return e
    }

    @Test("prefix-cache counters: once per request (vLLM 0.32) or at every lookup (older vLLM)")
    func counting() throws {
        let once = try Self.waitingForBlocks(.perRequest)
        #expect(once.stats.prefixQueries == 80 + 64)
        #expect(Self.value(Self.metricsText(once), "vllm:prefix_cache_queries_total") == 144)
        let every = try Self.waitingForBlocks(.everyLookup)
        // B was looked up on every step it waited.
        #expect(every.stats.prefixQueries > 80 + 64 * 5)
        #expect(Self.value(Self.metricsText(every), "vllm:prefix_cache_queries_total") == Double(every.stats.prefixQueries))
        #expect(every.stats.promptTokens == 144)
    }

    @Test("no prefix caching, no prefix-cache counts")
    func noCachingNoCounts() throws {
        var e = try Self.engine { $0.enablePrefixCaching = false }
        _ = runSequentially(&e, [EngineRequest(promptTokens: tokens(64), maxTokens: 2)])
        #expect(e.stats.prefixQueries == 0)
        #expect(e.stats.promptTokens == 64)
    }

    static func outcomes(_ change: (inout EngineConfiguration) -> Void, request: (Int) -> EngineRequest) throws -> [FinishedRequest] {
        var e = try Self.engine(change)
        var out = runSequentially(&e, (0..<40).map(request))
        out.sort { $0.id < $1.id }
        return out
    }

    @Test("output may end early on the end-of-sequence token, with a seeded probability")
    func endOfSequence() throws {
        let eos: (inout EngineConfiguration) -> Void = { $0.endOfSequenceProbability = 0.1 }
        let plain = { (i: Int) in EngineRequest(promptTokens: tokens(20, base: UInt32(100 * i)), maxTokens: 40) }
        let a = try Self.outcomes(eos, request: plain)
        let stopped = a.filter { $0.reason == .stop }
        #expect(stopped.count >= 20)
        #expect(stopped.allSatisfy { $0.completionTokens < 40 || $0.reason == .stop })
        #expect(a.contains { $0.reason == .length && $0.completionTokens == 40 })
        // Seeded: the same requests end the same way.
        let b = try Self.outcomes(eos, request: plain)
        #expect(a.map(\.completionTokens) == b.map(\.completionTokens) && a.map(\.reason) == b.map(\.reason))
        // ignore_eos runs to max_tokens; min_tokens holds the end back.
        let ignoring = try Self.outcomes(eos) { i in var r = plain(i); r.ignoreEOS = true; return r }
        #expect(ignoring.allSatisfy { $0.reason == .length && $0.completionTokens == 40 })
        let atLeast = try Self.outcomes(eos) { i in var r = plain(i); r.minTokens = 25; return r }
        #expect(atLeast.allSatisfy { $0.completionTokens >= 25 })
        #expect(atLeast.contains { $0.reason == .stop })
        // Off by default.
        let off = try Self.outcomes({ _ in }, request: plain)
        #expect(off.allSatisfy { $0.reason == .length })
    }

    @Test("the end-of-sequence token is the last output token and counts as one")
    func endOfSequenceToken() throws {
        var e = try Self.engine { $0.endOfSequenceProbability = 1 }
        _ = try e.add(EngineRequest(promptTokens: tokens(20), maxTokens: 10), at: 0)
        let s = e.step(now: 0)
        #expect(s.outputs.first?.token == e.configuration.endOfSequenceToken)
        #expect(s.outputs.first?.finished?.reason == .stop)
        #expect(s.outputs.first?.finished?.completionTokens == 1)
    }

    @Test("metrics are published after the step, not when a request arrives or is scheduled")
    func metricsAfterStep() throws {
        var e = try Self.engine()
        e.defersMetrics = true
        _ = try e.add(EngineRequest(promptTokens: tokens(64), maxTokens: 4), at: 0)
        var text = Self.metricsText(e)
        #expect(Self.value(text, "vllm:num_requests_waiting") == 0)
        _ = e.step(now: 0)
        text = Self.metricsText(e)
        #expect(Self.value(text, "vllm:num_requests_running") == 0)
        #expect(Self.value(text, "vllm:prefix_cache_queries_total") == 0)
        e.publishMetrics()
        text = Self.metricsText(e)
        #expect(Self.value(text, "vllm:num_requests_running") == 1)
        #expect(Self.value(text, "vllm:prefix_cache_queries_total") == 64)
        #expect(Self.value(text, "vllm:generation_tokens_total") == 1)
        // Undeferred (virtual time), a step publishes at its end.
        var v = try Self.engine()
        _ = try v.add(EngineRequest(promptTokens: tokens(64), maxTokens: 4), at: 0)
        _ = v.step(now: 0)
        #expect(Self.value(Self.metricsText(v), "vllm:num_requests_running") == 1)
    }

    @Test("an abort on an idle engine is published at once")
    func abortPublished() throws {
        var e = try Self.engine()
        e.defersMetrics = true
        let id = try e.add(EngineRequest(promptTokens: tokens(64), maxTokens: 4), at: 0)
        _ = e.step(now: 0)
        e.publishMetrics()
        e.abort(id)
        let text = Self.metricsText(e)
        #expect(Self.value(text, "vllm:num_requests_running") == 0)
        #expect(Self.value(text, "vllm:kv_cache_usage_perc") == 0)
    }

    @Test("vllm:gpu_cache_usage_perc only behind the compatibility setting", arguments: [false, true])
    func deprecatedUsageName(export: Bool) throws {
        let e = try Self.engine { $0.exportGPUCacheUsagePerc = export }
        let text = Self.metricsText(e)
        #expect(text.contains("vllm:kv_cache_usage_perc"))
        #expect(text.contains("vllm:gpu_cache_usage_perc") == export)
    }

    @Test("a pool of one block is refused: the null block leaves nothing")
    func oneBlockRefused() throws {
        #expect(throws: EngineError.self) { _ = try Self.engine(blocks: 1) }
        _ = try Self.engine(blocks: 2)
    }
}
