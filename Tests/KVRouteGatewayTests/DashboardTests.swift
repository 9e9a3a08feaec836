import Foundation
import KVRouteCore
import KVRouteGateway
import KVRouteTestSupport
import Testing

/// The live dashboard in a real browser (Debian's headless Chromium).
@Suite("Dashboard in headless Chromium", .serialized)
struct DashboardTests {
    static var chromium: String? { ExternalTool.find("chromium") ?? ExternalTool.find("chromium-browser") }

    static func browse(_ chromium: String, _ args: [String]) async throws -> ExternalTool.Result {
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("kvroute-chromium-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: profile) }
        return try await ExternalTool.runAsync(chromium, [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--user-data-dir=\(profile)", "--window-size=1280,900",
        ] + args, timeout: 90)
    }

    /// `data-engine="E" data-field="F">TEXT<` cells of the rendered page.
    static func cells(_ dom: String) -> [String: [String: String]] {
        var out: [String: [String: String]] = [:]
        let pattern = try! NSRegularExpression(pattern: #"data-engine="([^"]+)" data-field="([^"]+)">([^<]*)<"#)
        for m in pattern.matches(in: dom, range: NSRange(dom.startIndex..., in: dom)) {
            let s = { (i: Int) in String(dom[Range(m.range(at: i), in: dom)!]) }
            out[s(1), default: [:]][s(2)] = s(3)
        }
        return out
    }

    @Test("the page shows per-engine numbers that match /metrics, and a screenshot is taken while traffic flows",
          .enabled(if: chromium != nil || ExternalTool.peersRequired))
    func dashboardMatchesMetrics() async throws {
        let chromium = try #require(Self.chromium, "chromium is not installed; run scripts/test.sh")
        try await withSimCluster(engines: 3) { _, urls in
            let key = "dashboard-secret-0123456789"
            try await withGateway(endpoints: urls, explainSecret: key) { _, gw in
                let traffic = Task {
                    var i = 0
                    while !Task.isCancelled && i < 2_000 {
                        _ = try? await TestHTTP.postJSON(gw + "/v1/chat/completions",
                            chatBody(system: systemPrompt(group: i % 5, tokens: 400), user: "q\(i)", maxTokens: 4),
                            headers: [("x-session-id", "dash-\(i % 7)")])
                        i += 1
                    }
                }
                try await Task.sleep(for: .seconds(1))
                let shot = ExternalTool.repositoryRoot.appendingPathComponent(".build/dashboard.png").path
                let r = try await Self.browse(chromium, ["--screenshot=\(shot)", "--virtual-time-budget=3000", gw + "/dashboard?key=\(key)"])
                #expect(FileManager.default.fileExists(atPath: shot), "\(r.stderr.suffix(1500))")
                traffic.cancel()
                _ = await traffic.result
                // Let the scraper see the engines' final counters.
                try await Task.sleep(for: .milliseconds(400))
                let dump = try await Self.browse(chromium, ["--dump-dom", "--virtual-time-budget=3000", gw + "/dashboard?key=\(key)"])
                let shown = Self.cells(dump.stdout)
                #expect(shown.count == 3, "cells: \(shown) \(dump.stderr.suffix(1500))")
                let gatewayMetrics = try await TestHTTP.request(gw + "/metrics").body
                for u in urls {
                    let address = u.replacingOccurrences(of: "http://", with: "")
                    let engine = try await TestHTTP.request(u + "/metrics").body
                    let q = TestHTTP.metricSum(engine, "vllm:prefix_cache_queries_total")
                    let h = TestHTTP.metricSum(engine, "vllm:prefix_cache_hits_total")
                    let expected = String(format: "%.1f%%", 100 * h / q)
                    #expect(shown[address]?["hit_rate"] == expected, "\(address): page \(String(describing: shown[address])) vs metrics \(expected)")
                    let routed = gatewayMetrics.split(separator: "\n").first { $0.hasPrefix("kvroute_requests_routed_total{endpoint=\"\(address)\"}") }
                    let routedValue = routed.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }.map { String(Int($0)) }
                    #expect(shown[address]?["routed_total"] == routedValue, "\(address): page \(String(describing: shown[address])) vs \(String(describing: routedValue))")
                }
            }
        }
    }
}
