import Foundation
import KVRouteTestSupport
import Testing

/// Bounded loads through real kvroute processes while engines and the picker misbehave,
/// die and come back, and clients walk away. Each scenario checks the same promises: every
/// request gets exactly one answer (a 2xx, an error status, or an SSE error event; never a
/// hang, never a connection dropped for nothing), no kvroute process dies, and the
/// gateway's in-flight count returns to zero.
@Suite("Chaos: real processes under faults", .serialized)
struct ChaosTests {
    /// The promises every scenario keeps; `allowCutJSON` admits a non-streaming answer the
    /// gateway had to cut because the engine cut it after the headers.
    static func expectEveryRequestAnswered(_ o: LoadOutcome, _ stack: ProcessStack, allowCutJSON: Bool = false, sourceLocation: SourceLocation = #_sourceLocation) {
        print("chaos: \(o)")
        #expect(o.hung == 0, "requests hung: \(o)", sourceLocation: sourceLocation)
        if allowCutJSON {
            #expect(o.cutStreams == 0, "SSE streams cut without an error event: \(o)", sourceLocation: sourceLocation)
        } else {
            #expect(o.cut == 0, "connections dropped without an answer: \(o)", sourceLocation: sourceLocation)
        }
        #expect(o.answered + (allowCutJSON ? o.cut : 0) == o.sent, "\(o)", sourceLocation: sourceLocation)
        #expect(stack.deadProcesses.isEmpty, "\(stack.deadProcesses)", sourceLocation: sourceLocation)
    }

    static func expectNothingInFlight(_ stack: ProcessStack, sourceLocation: SourceLocation = #_sourceLocation) async {
        let left = await waitForNoneInFlight(stack.gatewayURL, secret: ProcessStack.explainSecret)
        #expect(left == 0, "gateway in-flight count stayed at \(left)", sourceLocation: sourceLocation)
    }

    @Test("engines killed mid-run and restarted: every request answered, the gateway lives, nothing left in flight")
    func enginesKilled() async throws {
        let stack = try ProcessStack()
        defer { stack.stop() }
        try await stack.waitEngines()
        try await stack.startGateway()
        let progress = LoadProgress()
        async let outcome = ChaosLoad(url: stack.gatewayURL, requests: 300, concurrency: 12).run(progress: progress)
        await progress.wait(for: 60)
        let busy = try await gatewayInFlight(stack.gatewayURL, secret: ProcessStack.explainSecret)
        stack.engines[0].kill()
        await progress.wait(for: 120)
        stack.engines[1].kill()
        await progress.wait(for: 180)
        try stack.engines[0].restart()
        await progress.wait(for: 220)
        try stack.engines[1].restart()
        let o = try await outcome
        Self.expectEveryRequestAnswered(o, stack)
        #expect(o.ok >= o.sent / 2, "most requests served: \(o)")
        #expect(busy > 0, "the in-flight count is read while requests are in flight")
        await Self.expectNothingInFlight(stack)
    }

    @Test("engines stalling after the response headers, for a while or for good: the gateway answers within its timeout")
    func enginesStall() async throws {
        let stack = try ProcessStack { i in
            switch i {
            case 0: ["--stall-rate", "1"]  // every completion, until the engine stops
            case 1: ["--stall-rate", "0.3", "--stall-ms", "\(ProcessStack.gatewayTimeoutSeconds * 3000)"]
            default: []
            }
        }
        defer { stack.stop() }
        try await stack.waitEngines()
        try await stack.startGateway()
        let o = try await ChaosLoad(url: stack.gatewayURL, requests: 160, concurrency: 16).run()
        Self.expectEveryRequestAnswered(o, stack)
        await Self.expectNothingInFlight(stack)
    }

    @Test("engines answering garbage metrics and garbage bodies, dropping connections: answered, and the gateway lives")
    func enginesAnswerGarbage() async throws {
        let stack = try ProcessStack { i in
            switch i {
            case 0: ["--garbage-metrics", "mixed", "--invalid-json-rate", "0.2"]
            case 1: ["--garbage-metrics", "nan", "--truncate-rate", "0.2", "--drop-rate", "0.2"]
            default: ["--garbage-metrics", "huge"]
            }
        }
        defer { stack.stop() }
        try await stack.waitEngines()
        try await stack.startGateway()
        let o = try await ChaosLoad(url: stack.gatewayURL, requests: 300, concurrency: 12).run()
        Self.expectEveryRequestAnswered(o, stack, allowCutJSON: true)
        // Spoiled samples are refused, and counted, instead of reaching the scorers.
        let metrics = try await TestHTTP.request(stack.gatewayURL + "/metrics", contentType: nil)
        #expect(metrics.status == 200)
        #expect(TestHTTP.metricSum(metrics.body, "kvroute_engine_samples_rejected_total") > 0, "no rejected engine samples counted")
        // The dashboard still renders (JSON cannot carry NaN or infinity).
        let dashboard = try await TestHTTP.request(stack.gatewayURL + "/dashboard/data?key=" + ProcessStack.explainSecret, contentType: nil)
        #expect(dashboard.status == 200 && dashboard.json != nil, "dashboard data: \(dashboard.status) \(dashboard.body.prefix(200))")
        #expect(stack.deadProcesses.isEmpty, "\(stack.deadProcesses)")
        await Self.expectNothingInFlight(stack)
    }

    @Test("an engine restarted with an empty cache and another's cache reset mid-run: answered, and the restarted engine serves again")
    func engineRestartedEmpty() async throws {
        let stack = try ProcessStack()
        defer { stack.stop() }
        try await stack.waitEngines()
        try await stack.startGateway()
        let progress = LoadProgress()
        async let outcome = ChaosLoad(url: stack.gatewayURL, requests: 300, concurrency: 12).run(progress: progress)
        await progress.wait(for: 100)
        try stack.engines[0].restart()
        _ = try await TestHTTP.request(stack.engineURLs[1] + "/reset_prefix_cache", method: .POST)
        let o = try await outcome
        Self.expectEveryRequestAnswered(o, stack)
        #expect(o.ok >= o.sent * 9 / 10, "\(o)")
        // The gateway noticed the engine came back: a second run reaches it.
        let again = try await ChaosLoad(url: stack.gatewayURL, requests: 90, concurrency: 9).run()
        Self.expectEveryRequestAnswered(again, stack)
        let served = try await stack.engineMetric(0, "vllm:request_success_total")
        #expect(served > 0, "the restarted engine served nothing")
        await Self.expectNothingInFlight(stack)
    }

    @Test("kvroute epp killed and restarted behind real Envoy: every request answered, Envoy and the new picker running",
          .enabled(if: ExternalTool.available("envoy")))
    func pickerKilledBehindEnvoy() async throws {
        let stack = try ProcessStack()
        defer { stack.stop() }
        try await stack.waitEngines()
        try await stack.startPickerBehindEnvoy()
        let envoy = try #require(stack.envoy), picker = try #require(stack.picker)
        let progress = LoadProgress()
        async let outcome = ChaosLoad(url: envoy.url, requests: 300, concurrency: 12).run(progress: progress)
        await progress.wait(for: 80)
        picker.kill()
        await progress.wait(for: 180)
        try picker.restart()
        try await waitForPort(stack.pickerPorts.grpc)
        let o = try await outcome
        Self.expectEveryRequestAnswered(o, stack)
        #expect(o.ok == o.sent, "Envoy fails open to the ring hash while the picker is down: \(o)")
        let after = try await ChaosLoad(url: envoy.url, requests: 60, concurrency: 6).run()
        Self.expectEveryRequestAnswered(after, stack)
        let streams = TestHTTP.metricSum(try await TestHTTP.request("http://127.0.0.1:\(stack.pickerPorts.metrics)/metrics", contentType: nil).body,
                                         "kvroute_epp_streams_total")
        #expect(streams > 0, "the restarted picker routes again")
        let pickerLeft = await waitForMetricZero("http://127.0.0.1:\(stack.pickerPorts.metrics)/metrics", "kvroute_requests_in_flight")
        #expect(pickerLeft == 0, "picker in-flight count stayed at \(pickerLeft)")
    }

    @Test("clients walking away at every phase, through the gateway and through Envoy: nothing stuck, everything still serves",
          .enabled(if: ExternalTool.available("envoy")))
    func clientsDisconnect() async throws {
        let stack = try ProcessStack()
        defer { stack.stop() }
        try await stack.waitEngines()
        try await stack.startGateway()
        try await stack.startPickerBehindEnvoy()
        let envoy = try #require(stack.envoy)
        let load = ChaosLoad(url: stack.gatewayURL)
        for port in [stack.gatewayPort, envoy.listenPort] {
            await withTaskGroup(of: Void.self) { g in
                var launched = 0
                for phase in DisconnectingClient.Phase.allCases {
                    for i in 0..<16 {
                        var b = load.body(i)
                        b["stream"] = phase == .midStream || i % 2 == 1
                        b["max_tokens"] = 64
                        let body = try! JSONSerialization.data(withJSONObject: b)
                        if launched >= 8 { await g.next() }
                        launched += 1
                        g.addTask { await DisconnectingClient.run(port: port, phase: phase, body: body, reset: i % 3 == 0) }
                    }
                }
            }
        }
        #expect(stack.deadProcesses.isEmpty, "\(stack.deadProcesses)")
        await Self.expectNothingInFlight(stack)
        let pickerLeft = await waitForMetricZero("http://127.0.0.1:\(stack.pickerPorts.metrics)/metrics", "kvroute_requests_in_flight")
        #expect(pickerLeft == 0, "picker in-flight count stayed at \(pickerLeft)")
        // Engines finish or drop what the departed clients asked for.
        for engine in stack.engineURLs.indices {
            var running = -1.0
            for _ in 0..<100 {
                running = try await stack.engineMetric(engine, "vllm:num_requests_running") + stack.engineMetric(engine, "vllm:num_requests_waiting")
                if running == 0 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(running == 0, "engine \(engine) still holds \(running) requests")
        }
        for url in [stack.gatewayURL, envoy.url] {
            let o = try await ChaosLoad(url: url, requests: 60, concurrency: 8).run()
            Self.expectEveryRequestAnswered(o, stack)
            #expect(o.ok == o.sent, "\(url): \(o)")
        }
    }
}
