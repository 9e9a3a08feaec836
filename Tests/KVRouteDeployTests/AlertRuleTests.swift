import Foundation
import KVRouteTestSupport
import Testing

/// The alert rules of deploy/kubernetes/monitoring/prometheusrule.yaml, as behaviour:
/// promtool's unit tests (prometheusrule_test.yaml, next to the rules) make every alert fire
/// on series that mean trouble and stay quiet on healthy ones; and end to end, a real
/// Prometheus scraping a real `kvroute epp` sees KVRoutePickerDown go firing once the picker
/// is killed.
@Suite("Alert rules: promtool unit tests, and an alert that fires", .serialized)
struct AlertRuleTests {
    static let folder = MonitoringTests.folder
    static let unitTests = folder.appendingPathComponent("prometheusrule_test.yaml")

    /// A scratch folder holding the rendered rule file under the name the unit tests load
    /// (prometheusrule.rules.yaml) and a copy of the unit tests.
    static func scratch(rules: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvroute-alerts-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try rules.write(to: dir.appendingPathComponent("prometheusrule.rules.yaml"), atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(at: unitTests, to: dir.appendingPathComponent("prometheusrule_test.yaml"))
        return dir
    }

    static func promtoolTest(rules: String) async throws -> ExternalTool.Result {
        let promtool = try ExternalTool.require("promtool")
        let dir = try scratch(rules: rules)
        defer { try? FileManager.default.removeItem(at: dir) }
        return try await ExternalTool.runAsync(promtool, ["test", "rules", dir.appendingPathComponent("prometheusrule_test.yaml").path])
    }

    @Test("promtool test rules: every alert fires on its trouble and stays quiet otherwise", .enabled(if: ExternalTool.available("promtool")))
    func unitTestsPass() async throws {
        let r = try await Self.promtoolTest(rules: try MonitoringTests.ruleFile())
        #expect(r.status == 0, "promtool test rules:\n\(r.stdout.suffix(4000))\n\(r.stderr.suffix(2000))")
        #expect(r.stdout.contains("SUCCESS"))
    }

    @Test("every alert in the rules has a unit test where it fires")
    func everyAlertCovered() throws {
        let text = try String(contentsOf: Self.unitTests, encoding: .utf8)
        // An alert test that expects alerts: `alertname: X` followed by `exp_alerts:`.
        let lines = text.components(separatedBy: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        var firing: Set<String> = [], quiet: Set<String> = []
        for (i, line) in lines.enumerated() where line.hasPrefix("alertname: ") {
            let name = String(line.dropFirst("alertname: ".count))
            if i + 1 < lines.count, lines[i + 1] == "exp_alerts:" { firing.insert(name) } else { quiet.insert(name) }
        }
        let alerts = Set(try MonitoringTests.alertNames())
        #expect(alerts.count == 10, "\(alerts.sorted())")
        #expect(alerts.subtracting(firing).isEmpty, "no firing test for \(alerts.subtracting(firing).sorted())")
        #expect(alerts.subtracting(quiet).isEmpty, "no quiet test for \(alerts.subtracting(quiet).sorted())")
        #expect(firing.union(quiet).subtracting(alerts).isEmpty, "tests for alerts that do not exist")
    }

    @Test("the unit tests can fail: with every `for:` at an hour, promtool reports the alerts that did not fire",
          .enabled(if: ExternalTool.available("promtool")))
    func unitTestsCanFail() async throws {
        let slow = try MonitoringTests.ruleFile().replacingOccurrences(of: #"for: \d+m"#, with: "for: 1h", options: .regularExpression)
        let r = try await Self.promtoolTest(rules: slow)
        #expect(r.status != 0)
        for alert in ["KVRoutePickerDown", "KVRouteEngineDown", "KVRoutePrefixCacheHitRateLow"] {
            #expect((r.stdout + r.stderr).contains("alertname: \(alert),"), "\(alert) not reported: \(r.stdout.suffix(3000))")
        }
    }

    // MARK: - End to end

    /// The same rules with every `for:` at one second, so an alert fires within a test's time.
    static func fastRuleFile() throws -> URL {
        let fast = try MonitoringTests.ruleFile().replacingOccurrences(of: #"for: \d+m"#, with: "for: 1s", options: .regularExpression)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kvroute-rules-fast-\(UUID().uuidString.prefix(8)).yaml")
        try fast.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    @Test("real Prometheus scraping real kvroute epp and sim: the picker killed, KVRoutePickerDown goes firing",
          .enabled(if: ExternalTool.available("prometheus")), .timeLimit(.minutes(2)))
    func pickerDownFires() async throws {
        let prometheus = try ExternalTool.require("prometheus")
        let rules = try Self.fastRuleFile()
        defer { try? FileManager.default.removeItem(at: rules) }
        let stack = try ProcessStack(engines: 2) { _ in ["--time-scale", "0.05"] }
        defer { stack.stop() }
        try await stack.waitEngines()
        try await stack.startPicker()
        let picker = try #require(stack.picker)
        let server = try PrometheusServer(
            binary: prometheus, targets: stack.engineURLs, jobName: MonitoringTests.engineJob,
            extraJobs: [(MonitoringTests.pickerJob, ["127.0.0.1:\(stack.pickerPorts.metrics)"])], ruleFiles: [rules.path])
        defer { server.stop() }
        _ = try await server.waitForQuery("count(up == 1)", atLeast: 3)
        // Healthy: the picker is scraped and reports both engines ready; no alert about it.
        _ = try await server.waitForQuery("min(inference_pool_ready_pods{job=\"\(MonitoringTests.pickerJob)\"})", atLeast: 2)
        try await Task.sleep(for: .seconds(1.5))
        let before = try await server.alerts()
        #expect(!before.contains { $0.name.hasPrefix("KVRoutePicker") || $0.name.hasPrefix("KVRouteEngine") },
                "alerts while healthy: \(before.map { "\($0.name)=\($0.state)" })")

        picker.kill()
        let alert = try await server.waitForAlert("KVRoutePickerDown", state: "firing")
        #expect(alert.labels["job"] == MonitoringTests.pickerJob)
        #expect(alert.labels["instance"] == "127.0.0.1:\(stack.pickerPorts.metrics)")
        #expect(alert.labels["severity"] == "critical")
        // The engines are still up: no engine alert fires with the picker.
        let after = try await server.alerts()
        #expect(!after.contains { $0.name == "KVRouteEngineDown" }, "\(after.map(\.name))")
    }
}
