import Foundation
import KVRouteTestSupport
import Testing

/// The built `kvroute` binary: the README's run command and the validator's exit codes.
@Suite("kvroute demo and validate commands", .serialized)
struct CommandTests {
    static var binary: String { ExternalTool.repositoryRoot.appendingPathComponent(".build/debug/kvroute").path }

    @Test("kvroute demo --once passes: ≥ 95 % hit rate, 100 % stickiness; picker off ≥ 99 %; round-robin far lower",
          .enabled(if: FileManager.default.isExecutableFile(atPath: binary)))
    func demo() async throws {
        let json = FileManager.default.temporaryDirectory.appendingPathComponent("kvroute-demo-\(UUID().uuidString.prefix(6)).json").path
        let r = try await ExternalTool.runAsync(Self.binary, ["demo", "--once", "--sleep-seconds", "0.01", "--time-scale", "0.05", "--json", json], timeout: 300)
        #expect(r.status == 0, "\(r.stdout.suffix(3000))\n\(r.stderr.suffix(2000))")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
        #expect((report["delta_hit_rate"] as? Double ?? 0) >= 0.95)
        #expect(report["stickiness_header"] as? Double == 1)
        #expect(report["stickiness_metrics"] as? Double == 1)
        // The contrast table: kvroute, picker off, round-robin rows.
        let rows = r.stdout.split(separator: "\n").filter { $0.contains("%") && ($0.contains("picker") || $0.contains("round-robin")) }
        func numbers(_ row: Substring) -> [Double] { row.split(separator: " ").compactMap { $0.hasSuffix("%") ? Double($0.dropLast()) : nil } }
        let kv = try #require(rows.first { $0.contains("kvroute picker") }).map(numbers)!
        let off = try #require(rows.first { $0.contains("picker off") }).map(numbers)!
        let rr = try #require(rows.first { $0.contains("round-robin") }).map(numbers)!
        print("demo contrast: kvroute \(kv), picker off \(off), round-robin \(rr)")
        #expect(off[1] >= 99)
        #expect(rr[0] < kv[0] - 20, "round-robin's hit rate is far lower")
    }

    @Test("kvroute validate exit codes: 3 for an unreachable gateway, 2 for bad flags",
          .enabled(if: FileManager.default.isExecutableFile(atPath: binary)))
    func exitCodes() async throws {
        let unreachable = try await ExternalTool.runAsync(Self.binary, ["validate", "--gateway-url", "http://127.0.0.1:\(freePort())", "--prometheus-url", "http://127.0.0.1:\(freePort())", "--requests", "1"])
        #expect(unreachable.status == 3 || unreachable.status == 4, "\(unreachable.stderr)")
        #expect(unreachable.stderr.hasPrefix("kvroute validate: "))
        #expect(!unreachable.stderr.contains("Fatal error"))
        let usage = try await ExternalTool.runAsync(Self.binary, ["validate"])
        #expect(usage.status == 64 || usage.status == 2, "\(usage.stderr)")
    }
}
