import AsyncHTTPClient
import Foundation
import KVRouteCore
import KVRouteDataLayer
import KVRouteGateway
import KVRouteTestSupport
import Logging
import Synchronization
import Testing

/// Engines are not trusted: a page of NaN, infinities, huge or negative figures and junk is
/// read sample by sample, and the router keeps routing.
@Suite("Engine metrics out of range", .serialized)
struct EngineMetricsHardeningTests {
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

    @Test("a garbage engine next to a good one: requests keep being answered, the rejection counter rises")
    func gatewayKeepsRouting() async throws {
        let engine = MisbehavingEngine(metricsPage: MisbehavingEngine.garbagePage())
        try await engine.run {
            try await withSimCluster(engines: 1) { _, urls in
                try await withGateway(endpoints: [engine.url] + urls) { gateway, gw in
                    for i in 0..<20 {
                        let r = try await TestHTTP.postJSON(gw + "/v1/chat/completions", chatBody(system: systemPrompt(group: i % 4, tokens: 100), user: "q\(i)"), headers: [("x-session-id", "s\(i)")])
                        #expect(r.status == 200, "\(r.body.prefix(300))")
                    }
                    let garbage = try #require(gateway.pool.snapshots().first { $0.address.port == engine.port })
                    #expect(garbage.healthy)
                    #expect(garbage.waitingRequests == 2)
                    #expect(garbage.kvCacheUsage == 0)
                    let first = try await Self.rejected(gw)
                    #expect(first[.notANumber, default: 0] >= 2)
                    #expect(first[.badLabel, default: 0] >= 2)
                    for reason in EngineSampleRejection.allCases { #expect(first[reason] != nil, "no series for \(reason)") }
                    var later = first
                    let deadline = ContinuousClock.now + .seconds(10)
                    while later[.notANumber, default: 0] <= first[.notANumber, default: 0] && ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(100))
                        later = try await Self.rejected(gw)
                    }
                    #expect(later[.notANumber, default: 0] > first[.notANumber, default: 0])
                    #expect(try await TestHTTP.request(gw + "/health").status == 200)
                }
            }
        }
    }

    @Test("client model names cannot mint series: 1000 random names before any scrape succeeded")
    func modelLabelBounded() async throws {
        let dead = "http://127.0.0.1:\(freePort())"
        try await withGateway(endpoints: [dead]) { _, gw in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        for i in stride(from: worker, to: 1000, by: 8) {
                            var body = chatBody(system: "s", user: "u")
                            body["model"] = "random-\(i)-\(UInt64.random(in: 0...UInt64.max))"
                            let r = try await TestHTTP.postJSON(gw + "/v1/chat/completions", body)
                            #expect(r.status >= 400)
                        }
                    }
                }
                try await group.waitForAll()
            }
            let page = try await TestHTTP.request(gw + "/metrics").body
            let models = Self.labelValues(page, "model_name")
            #expect(models.count == 1 && models.contains("other"), "\(models.count) model_name values, e.g. \(models.sorted().prefix(3))")
            #expect(page.split(separator: "\n").filter { $0.hasPrefix("inference_objective_request_total{") }.count == 1)
        }
    }

    @Test("a model an engine reports keeps its own label; others are `other`")
    func knownModelKeepsLabel() async throws {
        try await withSimCluster(engines: 1) { _, urls in
            try await withGateway(endpoints: urls) { _, gw in
                #expect(try await TestHTTP.postJSON(gw + "/v1/chat/completions", chatBody(system: "s", user: "u")).status == 200)
                for i in 0..<50 {
                    var body = chatBody(system: "s", user: "u")
                    body["model"] = "nope-\(i)"
                    #expect(try await TestHTTP.postJSON(gw + "/v1/chat/completions", body).status == 404)
                }
                let models = Self.labelValues(try await TestHTTP.request(gw + "/metrics").body, "model_name")
                #expect(models == ["meta-llama/Llama-3.2-3B-Instruct", "other"], "\(models)")
            }
        }
    }

    /// `kvroute_engine_samples_rejected_total` by reason, from a /metrics page.
    static func rejected(_ base: String) async throws -> [EngineSampleRejection: Double] {
        let page = try await TestHTTP.request(base + "/metrics").body
        var out: [EngineSampleRejection: Double] = [:]
        for reason in EngineSampleRejection.allCases {
            let prefix = "kvroute_engine_samples_rejected_total{reason=\"\(reason.rawValue)\"} "
            if let line = page.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) {
                out[reason] = Double(line.dropFirst(prefix.count))
            }
        }
        return out
    }

    /// Distinct values of one label over a /metrics page.
    static func labelValues(_ page: String, _ label: String) -> Set<String> {
        var out = Set<String>()
        for line in page.split(separator: "\n") where !line.hasPrefix("#") {
            guard let r = line.range(of: label + "=\"") else { continue }
            let rest = line[r.upperBound...]
            if let end = rest.firstIndex(of: "\"") { out.insert(String(rest[..<end])) }
        }
        return out
    }
}

/// Log records kept in memory.
final class LogRecords: Sendable {
    struct Record: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let records = Mutex<[Record]>([])
    var all: [Record] { records.withLock { $0 } }
    func append(_ r: Record) { records.withLock { $0.append(r) } }
    var handler: Handler { Handler(records: self) }

    struct Handler: LogHandler {
        let records: LogRecords
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
            let merged = self.metadata.merging(metadata ?? [:]) { _, new in new }
            records.append(Record(level: level, message: message.description, metadata: merged.mapValues { "\($0)" }))
        }
    }
}
