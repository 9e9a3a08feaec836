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
