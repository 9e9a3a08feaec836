import AsyncHTTPClient
import KVRouteCore
import KVRouteDataLayer
import KVRouteTestSupport
import Logging
import Testing

/// Engines are not trusted: a page of NaN, infinities, huge or negative figures and junk is
/// read sample by sample.
@Suite("Engine metrics pages")
struct EngineMetricsParsingTests {
    struct BadSample: Sendable, CustomTestStringConvertible {
        var line: String
        var reason: EngineSampleRejection
        var testDescription: String { line.count > 80 ? String(line.prefix(80)) + "…" : line }
    }

    static let badSamples: [BadSample] = [
        BadSample(line: #"vllm:num_requests_waiting{model_name="m"} NaN"#, reason: .notANumber),
        BadSample(line: #"vllm:num_requests_running{model_name="m"} +Inf"#, reason: .infinite),
        BadSample(line: #"vllm:num_requests_waiting{model_name="m"} -Inf"#, reason: .infinite),
        BadSample(line: #"vllm:num_requests_waiting{model_name="m"} 1e300"#, reason: .outOfRange),
        BadSample(line: #"vllm:num_requests_waiting{model_name="m"} 9223372036854775808"#, reason: .outOfRange),
        BadSample(line: #"vllm:num_requests_running{model_name="m"} -5"#, reason: .negative),
        BadSample(line: #"vllm:kv_cache_usage_perc{model_name="m"} 7"#, reason: .outOfRange),
        BadSample(line: #"vllm:kv_cache_usage_perc{model_name="m"} -0.5"#, reason: .negative),
        BadSample(line: #"vllm:gpu_cache_usage_perc{model_name="m"} NaN"#, reason: .notANumber),
        BadSample(line: #"vllm:prefix_cache_queries_total{model_name="m"} 1e19"#, reason: .outOfRange),
        BadSample(line: #"vllm:prefix_cache_hits_total{model_name="m"} -1"#, reason: .negative),
        BadSample(line: #"vllm:cache_config_info{block_size="0",num_gpu_blocks="100"} 1"#, reason: .badLabel),
        BadSample(line: #"vllm:cache_config_info{block_size="16",num_gpu_blocks="99999999999999999999999"} 1"#, reason: .badLabel),
        BadSample(line: #"vllm:num_requests_waiting{model_name="\#(String(repeating: "x", count: 10_000))"} 1"#, reason: .badLabel),
        BadSample(line: "vllm:num_requests_waiting{model_name=\"a\u{1}b\"} 1", reason: .badLabel),
    ]

    @Test("each bad sample is left out with its reason; the page's good samples still count", arguments: badSamples)
    func badSampleRejected(_ c: BadSample) {
        let page = c.line + "\n" + #"vllm:num_requests_waiting{model_name="good"} 3"# + "\n" + #"vllm:kv_cache_usage_perc{model_name="good"} 0.25"# + "\n"
        let s = EngineMetricsSnapshot.parse(page)
        #expect(s.rejected == [c.reason: 1])
        #expect(s.waiting == 3)
        #expect(s.kvCacheUsage == 0.25)
        #expect(s.prefixQueries == 0 && s.prefixHits == 0)
        #expect(s.blockSize == nil && s.numGPUBlocks == nil)
        #expect(s.modelNames == ["good"])
    }

    @Test("the garbage page: every reason counted, the good series read, values bounded")
    func garbagePage() {
        let s = EngineMetricsSnapshot.parse(String(decoding: MisbehavingEngine.garbagePage(), as: UTF8.self))
        #expect(s.rejected == [.notANumber: 2, .infinite: 2, .outOfRange: 4, .negative: 1, .badLabel: 2], "\(s.rejected)")
        #expect(s.waiting == 2)
        #expect(s.running == 4)
        #expect(s.kvCacheUsage == 0)
        #expect(s.modelNames == ["meta-llama/Llama-3.2-3B-Instruct"], "names of rejected samples are not learnt")
    }

    @Test("sums saturate, usage stays in 0…1, hits never exceed queries, model names are capped")
    func bounded() {
        var lines = (0..<3).map { #"vllm:num_requests_waiting{engine="\#($0)"} 4294967295"# }
        lines += [#"vllm:kv_cache_usage_perc{engine="0"} 1"#, #"vllm:kv_cache_usage_perc{engine="1"} 0.5"#]
        lines += [#"vllm:prefix_cache_queries_total 10"#, #"vllm:prefix_cache_hits_total 30"#]
        lines += (0..<100).map { #"vllm:num_requests_running{model_name="model-\#($0)"} 0"# }
        let s = EngineMetricsSnapshot.parse(lines.joined(separator: "\r\n"))
        #expect(s.waiting == EngineMetricsSnapshot.maxRequestCount)
        #expect(s.kvCacheUsage == 0.75)
        #expect(s.prefixQueries == 10 && s.prefixHits == 10)
        #expect(s.modelNames.count == EngineMetricsSnapshot.maxModelNames)
        #expect(s.rejected == [.badLabel: 100 - EngineMetricsSnapshot.maxModelNames])
    }

    @Test("a misbehaving engine is logged once per reason, not on every scrape, and counted every time")
    func loggedOnce() async throws {
        let engine = MisbehavingEngine(metricsPage: MisbehavingEngine.garbagePage())
        try await engine.run {
            let records = LogRecords()
            let logger = Logger(label: "test") { _ in records.handler }
            let client = HTTPClientService.makeClient()
            let pool = EndpointPool()
            let address = try #require(EndpointAddress("127.0.0.1:\(engine.port)"))
            pool.setMembers([(address: address, baseURL: engine.url, labels: [:])])
            let scraper = MetricsScraper(pool: pool, client: client, timeout: .seconds(5), logger: logger)
            for _ in 0..<3 { await scraper.scrapeOnce() }
            try await client.shutdown()
            let rejectedLogs = records.all.filter { $0.message == "engine metrics samples rejected" }
            #expect(Set(rejectedLogs.compactMap { $0.metadata["reason"] }) == Set(EngineSampleRejection.allCases.map(\.rawValue)))
            #expect(rejectedLogs.count == EngineSampleRejection.allCases.count)
            #expect(rejectedLogs.allSatisfy { $0.metadata["endpoint"] == address.description })
            #expect(scraper.rejections.totals[.notANumber] == 6)
            #expect(pool.snapshots().first?.waitingRequests == 2)
            #expect(pool.snapshots().first?.healthy == true)
        }
    }

    @Test("the Prometheus text parser: comments, CRLF, labels with quoted braces and escapes, values")
    func prometheusText() {
        let page = "# HELP x y\r\n# TYPE x gauge\r\nx{a=\"b}c\",d=\"e\\\"f\"} 1.5\r\ny 2\n\nz{} +Inf\nbad{a=\"1\"\n"
        let samples = PrometheusText.parse(page[...])
        #expect(samples.map(\.name) == ["x", "y", "z"])
        #expect(samples[0].labels == ["a": "b}c", "d": #"e\"f"#])
        #expect(samples[0].value == 1.5 && samples[1].value == 2 && samples[2].value == .infinity)
    }

    @Test("a rejected metric name is skipped before its labels are read")
    func filterSkipsLines() {
        let page = "vllm:e2e_request_latency_seconds_bucket{le=\"0.1\",model_name=\"m\"} 3\nvllm:num_requests_waiting{model_name=\"m\"} 2\n"
        var seen: [Substring] = []
        let samples = PrometheusText.parse(page[...]) { name in
            seen.append(name)
            return name == "vllm:num_requests_waiting"
        }
        #expect(seen == ["vllm:e2e_request_latency_seconds_bucket", "vllm:num_requests_waiting"])
        #expect(samples.count == 1 && samples[0].labels == ["model_name": "m"])
    }
}

/// Scrapes and probes slow down while no decision reads the pool.
@Suite("Idle pacing")
struct IdlePacingTests {
    @Test("a pool no decision has read is idle; a read makes it busy for `quiet`")
    func idleUntilRead() {
        let pool = EndpointPool()
        let start = ContinuousClock.now
        #expect(pool.isIdle(for: .seconds(2), now: start))
        _ = pool.snapshots(now: start)
        #expect(!pool.isIdle(for: .seconds(2), now: start + .seconds(1)))
        #expect(pool.isIdle(for: .seconds(2), now: start + .seconds(2)))
    }

    @Test("the idle interval applies only while idle, and never speeds a loop up")
    func pace() {
        let pool = EndpointPool()
        let idle = IdlePacing(quiet: .seconds(60), interval: .milliseconds(500))
        #expect(idle.pace(pool, busy: .milliseconds(50)) == .milliseconds(500))
        #expect(idle.pace(pool, busy: .seconds(5)) == .seconds(5))
        _ = pool.snapshots()
        #expect(idle.pace(pool, busy: .milliseconds(50)) == .milliseconds(50))
    }

    @Test("a decision after an idle spell wakes the loop at once, without waiting for it", .timeLimit(.minutes(1)))
    func wakesOnRead() async throws {
        let pool = EndpointPool()
        // Idle at once, and an idle wait far longer than the test may take.
        let idle = IdlePacing(quiet: .zero, interval: .seconds(3600))
        let (rounds, sink) = AsyncStream.makeStream(of: Void.self)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await idle.run(pool, busy: .milliseconds(10)) { sink.yield() }
                sink.finish()
            }
            var it = rounds.makeAsyncIterator()
            #expect(await it.next() != nil)
            // The loop now waits at the idle pace; a read is the only thing that can end it.
            _ = pool.snapshots()
            #expect(await it.next() != nil)
            group.cancelAll()
        }
    }

    @Test("a waiter for the next read returns at once when a read already happened, and on cancellation")
    func nextRead() async {
        let pool = EndpointPool()
        let before = pool.readCount
        _ = pool.snapshots()
        await pool.nextRead(after: before)  // returns: the read happened
        let task = Task { await pool.nextRead(after: pool.readCount) }
        task.cancel()
        await task.value
        #expect(pool.readCount == before + 1)
    }
}
