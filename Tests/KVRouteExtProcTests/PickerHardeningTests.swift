import Foundation
import GRPCCore
import KVRouteExtProc
import KVRouteProto
import KVRouteTestSupport
import Testing

/// `kvroute epp` when engines go away or misbehave: readiness follows the healthy endpoints,
/// bad engine figures are counted, client model names cannot mint series.
@Suite("kvroute epp with failing and misbehaving engines", .serialized)
struct PickerHardeningTests {
    static let names = ["", "envoy.service.ext_proc.v3.ExternalProcessor", "liveness", "readiness"]

    /// Polls gRPC health until every name but `liveness` reads ready (or not), or gives up
    /// after 10 s. The names are asked one after another, so one read can straddle a change.
    static func readiness(port: Int, becomes ready: Bool) async throws -> [String: Grpc_Health_V1_HealthCheckResponse.ServingStatus] {
        let wanted: Grpc_Health_V1_HealthCheckResponse.ServingStatus = ready ? .serving : .notServing
        let deadline = ContinuousClock.now + .seconds(10)
        var s = try await healthStatuses(port: port, services: names)
        while names.contains(where: { $0 != "liveness" && s[$0] != wanted }) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            s = try await healthStatuses(port: port, services: names)
        }
        return s
    }

    @Test("every engine unhealthy: readiness, \"\" and the ext_proc name NOT_SERVING, liveness SERVING; back to SERVING when one heals")
    func readinessFollowsEngines() async throws {
        try await withSimCluster(engines: 1) { _, urls in
            try await withPicker(engines: urls) { picker in
                let port = picker.configuration.healthPort
                let up = try await healthStatuses(port: port, services: Self.names)
                #expect(Self.names.allSatisfy { up[$0] == .serving }, "\(up)")

                #expect(try await TestHTTP.request(urls[0] + "/admin/faults", method: .POST, body: #"{"healthy": false}"#).status == 200)
                let down = try await Self.readiness(port: port, becomes: false)
                #expect(down["readiness"] == .notServing)
                #expect(down[""] == .notServing)
                #expect(down["envoy.service.ext_proc.v3.ExternalProcessor"] == .notServing)
                #expect(down["liveness"] == .serving)

                #expect(try await TestHTTP.request(urls[0] + "/admin/faults", method: .POST, body: #"{"healthy": true}"#).status == 200)
                let back = try await Self.readiness(port: port, becomes: true)
                #expect(Self.names.allSatisfy { back[$0] == .serving }, "\(back)")
            }
        }
    }

    @Test("an engine that is known but unreachable from the start: not ready")
    func unreachableEngine() async throws {
        try await withPicker(engines: ["http://127.0.0.1:\(freePort())"]) { picker in
            let s = try await healthStatuses(port: picker.configuration.healthPort, services: Self.names)
            #expect(s["liveness"] == .serving)
            #expect(s["readiness"] == .notServing)
            #expect(s[""] == .notServing)
            #expect(s["envoy.service.ext_proc.v3.ExternalProcessor"] == .notServing)
        }
    }

    @Test("a garbage engine next to a good one: decisions keep coming, the picker's rejection counter rises")
    func garbageEngine() async throws {
        let engine = MisbehavingEngine(metricsPage: MisbehavingEngine.garbagePage())
        try await engine.run {
            try await withSimCluster(engines: 1) { _, urls in
                try await withPicker(engines: [engine.url] + urls) { picker in
                    let metricsURL = "http://127.0.0.1:\(picker.configuration.metricsPort)/metrics"
                    for _ in 0..<5 {
                        let out = try await ExtProcServiceTests.exchange(picker.configuration.grpcPort, [
                            ExtProcServiceTests.headers([], mode: .buffered), ExtProcServiceTests.body(ExtProcServiceTests.chatBody)])
                        try #require(out.count == 2)
                        #expect(ExtProcServiceTests.destination(out[1].requestBody.response) != nil)
                    }
                    let first = TestHTTP.metricSum(try await TestHTTP.request(metricsURL).body, "kvroute_engine_samples_rejected_total")
                    #expect(first >= 11)
                    var later = first
                    let deadline = ContinuousClock.now + .seconds(10)
                    while later <= first && ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(100))
                        later = TestHTTP.metricSum(try await TestHTTP.request(metricsURL).body, "kvroute_engine_samples_rejected_total")
                    }
                    #expect(later > first)
                    let s = try await healthStatuses(port: picker.configuration.healthPort, services: ["readiness"])
                    #expect(s["readiness"] == .serving)
                }
            }
        }
    }

    @Test("engines that report no model names: 300 random client models still make one model_name series")
    func modelLabelBounded() async throws {
        let page = "vllm:num_requests_waiting 0\nvllm:num_requests_running 0\nvllm:kv_cache_usage_perc 0\n"
        let engine = MisbehavingEngine(metricsPage: Array(page.utf8))
        try await engine.run {
            try await withPicker(engines: [engine.url]) { picker in
                for i in 0..<300 {
                    let body = #"{"model":"client-\#(i)-\#(UInt32.random(in: 0...UInt32.max))","messages":[{"role":"user","content":"hi"}],"max_tokens":4}"#
                    let out = try await ExtProcServiceTests.exchange(picker.configuration.grpcPort, [
                        ExtProcServiceTests.headers([], mode: .buffered), ExtProcServiceTests.body(body)])
                    #expect(out.count == 2)
                }
                let metrics = try await TestHTTP.request("http://127.0.0.1:\(picker.configuration.metricsPort)/metrics").body
                var models = Set<Substring>()
                for line in metrics.split(separator: "\n") where !line.hasPrefix("#") {
                    guard let r = line.range(of: "model_name=\"") else { continue }
                    let rest = line[r.upperBound...]
                    models.insert(rest[..<(rest.firstIndex(of: "\"") ?? rest.endIndex)])
                }
                #expect(models.count == 1 && models.contains("other"), "\(models.count) model_name values, e.g. \(models.sorted().prefix(3))")
            }
        }
    }
}
