import Foundation
import KVRouteTestSupport
import Testing

/// `kvroute validate` as a judge, with real processes on loopback: three `kvroute sim`
/// engines behind a `kvroute gateway`. The same run passes through the KV-cache-aware
/// gateway and fails, naming stickiness, through a round-robin one: the check can fail.
@Suite("kvroute validate judges the routing in front of real engines", .serialized)
struct ValidateRoutingTests {
    /// 12 measured requests in one session, ~1,100-token prompt; gates of 90 % delta hit rate
    /// and 99 % stickiness. The report and the exit status.
    static func validate(_ stack: ProcessStack) async throws -> (result: ExternalTool.Result, report: [String: Any]) {
        let json = FileManager.default.temporaryDirectory.appendingPathComponent("kvroute-validate-\(UUID().uuidString.prefix(6)).json")
        defer { try? FileManager.default.removeItem(at: json) }
        let r = try await ExternalTool.runAsync(try KVRouteBinary.require(), [
            "validate", "--gateway-url", stack.gatewayURL, "--metrics-urls", stack.engineURLs.joined(separator: ","), "--reset",
            "--requests", "12", "--sleep-seconds", "0.01", "--min-hit-rate", "90", "--min-stickiness", "99%", "--json", json.path,
        ], timeout: 120, environment: ["NO_COLOR": "1"])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any],
                                  "no JSON report: \(r.stdout.suffix(2000)) \(r.stderr)")
        return (r, report)
    }

    static func stack() async throws -> ProcessStack {
        let stack = try ProcessStack(engines: 3) { _ in ["--time-scale", "0.05"] }
        try await stack.waitEngines()
        return stack
    }

    @Test("through the KV-cache-aware gateway: PASS, exit 0, stickiness 100 %, delta hit rate ≥ 90 %")
    func passesThroughPicker() async throws {
        let stack = try await Self.stack()
        defer { stack.stop() }
        try await stack.startGateway()
        let (r, report) = try await Self.validate(stack)
        #expect(r.status == 0, "\(r.stdout.suffix(3000))\n\(r.stderr)")
        #expect(r.stdout.contains("\nPASS"))
        #expect(report["passed"] as? Bool == true)
        #expect(report["stickiness_header"] as? Double == 1)
        #expect((report["delta_hit_rate"] as? Double ?? 0) >= 0.9)
    }

    @Test("through a round-robin gateway: FAIL, exit 1, the stickiness check names the reason")
    func failsThroughRoundRobin() async throws {
        let stack = try await Self.stack()
        defer { stack.stop() }
        try await stack.startGateway(extra: ["--mode", "round-robin"])
        let (r, report) = try await Self.validate(stack)
        #expect(r.status == 1, "thresholds missed is exit 1: \(r.stdout.suffix(3000))\n\(r.stderr)")
        #expect(r.stderr.isEmpty, "a failed check is a report, not an error: \(r.stderr)")
        let verdict = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix("FAIL: ") }, "\(r.stdout.suffix(2000))")
        #expect(verdict.contains("stickiness") && verdict.contains("is below the minimum 99"), "\(verdict)")
        #expect(report["passed"] as? Bool == false)
        // Round-robin over three engines sends one session's requests evenly: the busiest
        // engine gets at most ceil(12 / 3) + 1 of 12 (the warm-up may land before the cycle).
        let stickiness = try #require(report["stickiness_header"] as? Double)
        #expect(stickiness <= 5.0 / 12, "stickiness \(stickiness)")
        let failures = try #require(report["failures"] as? [String], "\(report.keys.sorted())")
        #expect(failures.contains { $0.hasPrefix("stickiness ") }, "\(failures)")
    }
}
