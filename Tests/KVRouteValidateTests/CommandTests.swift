import Foundation
import KVRouteTestSupport
import Testing

/// The built `kvroute` binary (from the same build as these tests): the README's run
/// command, and `kvroute validate`'s exit codes, one-line errors and CI-friendly output.
@Suite("kvroute demo and validate commands", .serialized)
struct CommandTests {
    /// The binary, or a failure (never a skip) when it is not built.
    static var binary: String { get throws { try KVRouteBinary.require() } }

    static func temporaryFile(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("kvroute-\(name)-\(UUID().uuidString.prefix(6)).json").path
    }

    @Test("kvroute demo --once passes: ≥ 95 % hit rate, 100 % stickiness; picker off ≥ 99 %; round-robin far lower")
    func demo() async throws {
        let json = Self.temporaryFile("demo")
        let r = try await ExternalTool.runAsync(try Self.binary, ["demo", "--once", "--sleep-seconds", "0.01", "--time-scale", "0.05", "--json", json], timeout: 300)
        #expect(r.status == 0, "\(r.stdout.suffix(3000))\n\(r.stderr.suffix(2000))")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
        #expect((report["delta_hit_rate"] as? Double ?? 0) >= 0.95)
        #expect(report["stickiness_header"] as? Double == 1)
        #expect(report["stickiness_metrics"] as? Double == 1)
        // The contrast table: kvroute, picker off, round-robin rows.
        let rows = r.stdout.split(separator: "\n").filter { $0.contains("%") && ($0.contains("picker") || $0.contains("round-robin")) }
        func numbers(_ row: Substring) -> [Double] { row.split(separator: " ").compactMap { $0.hasSuffix("%") ? Double($0.dropLast()) : nil } }
        let kv = numbers(try #require(rows.first { $0.contains("kvroute picker") }))
        let off = numbers(try #require(rows.first { $0.contains("picker off") }))
        let rr = numbers(try #require(rows.first { $0.contains("round-robin") }))
        print("demo contrast: kvroute \(kv), picker off \(off), round-robin \(rr)")
        #expect(off[1] >= 99)
        // An absolute floor first: 8 tenants over 3 engines that cache about four prompts
        // each all fit when each tenant stays on one engine, so after the warm-up nearly every
        // prompt token is a hit (a miss only on each prompt's last partial block).
        #expect(kv[0] >= 90, "the KV-cache-aware gateway keeps every tenant's prompt cached")
        #expect(rr[0] < kv[0] - 20, "round-robin's hit rate is far lower")
    }

    @Test("kvroute validate passes (exit 0) with a JSON report and a log without escape codes or carriage returns")
    func passes() async throws {
        try await withSimCluster(engines: 3) { _, urls in
            let json = Self.temporaryFile("validate")
            let r = try await ExternalTool.runAsync(try Self.binary, [
                "validate", "--gateway-url", urls[0], "--metrics-urls", urls.joined(separator: ","), "--reset",
                "--requests", "12", "--sleep-seconds", "0.01", "--min-hit-rate", "90", "--min-stickiness", "99%", "--json", json,
            ])
            #expect(r.status == 0, "\(r.stdout.suffix(3000))\n\(r.stderr.suffix(2000))")
            #expect(!r.stdout.contains("\u{1B}") && !r.stdout.contains("\r"), "plain text when stdout is not a terminal")
            for step in ["verify", "reset", "gateway", "warm-up", "baseline", "measure", "final", "results"] {
                #expect(r.stdout.contains("==> \(step): "), "step \(step)")
            }
            #expect(r.stdout.contains("    requests 12/12"), "a counter line, not a redrawn bar")
            #expect(r.stdout.contains("Delta hit rate") && r.stdout.contains("\nPASS"))
            let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
            #expect((report["delta_hit_rate"] as? Double ?? 0) >= 0.95)
            #expect(report["passed"] as? Bool == true)
            let settings = try #require(report["settings"] as? [String: Any])
            #expect(settings["min_hit_rate"] as? Double == 0.9 && settings["min_stickiness"] as? Double == 0.99)
            #expect((settings["session_id"] as? String)?.hasPrefix("kvroute-validate-") == true, "a generated session id")
        }
    }

    @Test("kvroute validate exit codes: 1 thresholds, 2 usage, 3 gateway, 4 metrics; one line on stderr")
    func exitCodes() async throws {
        try await withSimCluster(engines: 1) { _, urls in
            let quick = ["--requests", "2", "--sleep-seconds", "0"]
            let cases: [(args: [String], status: Int32, mention: String)] = [
                (["validate", "--metrics-urls", urls[0]], 2, "--gateway-url is required"),
                (["validate", "--gateway-url", urls[0], "--metrics-urls", urls[0], "--min-hit-rate", "lots"], 2, "--min-hit-rate lots is not a number"),
                (["validate", "--gateway-url", urls[0]], 2, "no engine metrics"),
                (["validate", "--gateway-url", "http://127.0.0.1:\(freePort())", "--metrics-urls", urls[0]] + quick, 3, "unreachable"),
                (["validate", "--gateway-url", urls[0], "--metrics-urls", urls[0], "--model", "gpt-nothing"] + quick, 3, "gpt-nothing"),
                (["validate", "--gateway-url", urls[0], "--metrics-urls", "http://127.0.0.1:\(freePort())"] + quick, 4, "unreachable"),
                (["validate", "--gateway-url", urls[0], "--metrics-urls", urls[0], "--min-hit-rate", "0.9999"] + quick, 1, ""),
            ]
            for c in cases {
                let r = try await ExternalTool.runAsync(try Self.binary, c.args, environment: ["NO_COLOR": "1"])
                #expect(r.status == c.status, "\(c.args): \(r.stderr)")
                if c.status == 1 {
                    #expect(r.stdout.contains("FAIL: delta hit rate"), "\(r.stdout.suffix(500))")
                    #expect(r.stderr.isEmpty)
                } else {
                    #expect(r.stderr.hasPrefix("kvroute validate: ") && r.stderr.contains(c.mention), "\(c.args): \(r.stderr)")
                    #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)")
                    #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("Stack"))
                }
            }
        }
    }
}
