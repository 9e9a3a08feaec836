import Foundation
import KVRouteCore
import KVRouteExtProc
import KVRoutePrecise
import KVRouteRouting
import KVRouteTestSupport
import Logging
import Testing

/// `kvroute epp` in precise mode (in process, over its routing seam) against two real
/// `kvroute sim` processes publishing vLLM KV events: a prompt an engine served is routed back
/// to it once its events arrive, and two pickers fed by the same events decide alike.
@Suite("Precise routing in the endpoint picker", .serialized)
struct PreciseRoutingTests {
    typealias Sim = PreciseIndexServiceTests.Sim

    static func config() throws -> EndpointPickerConfig { try #require(EndpointPickerConfig.builtIn("precise")) }

    /// A chat whose system prompt (about 20 blocks of 16 tokens with the 4-byte tokenizer)
    /// names `topic`.
    static func chat(_ topic: Int, _ question: Int) -> [ChatMessage] {
        let words = (0..<130).map { "t\(topic)w\($0 % 97)" }.joined(separator: " ")
        return [ChatMessage(role: "system", content: "Topic \(topic). " + words),
                ChatMessage(role: "user", content: "Question \(question) about topic \(topic)?")]
    }

    static func request(_ topic: Int, _ question: Int) -> InferenceRequest {
        InferenceRequest(requestID: "q\(topic)-\(question)", model: Sim.modelName, prompt: .messages(chat(topic, question)))
    }

    /// Serves the chat on `sim` (outside any router).
    static func serve(_ topic: Int, _ question: Int, on url: String) async throws {
        let messages = chat(topic, question).map { ["role": $0.role, "content": $0.content] }
        let r = try await TestHTTP.postJSON(url + "/v1/chat/completions", ["model": Sim.modelName, "messages": messages, "max_tokens": 4])
        #expect(r.status == 200)
    }

    /// A picker with its precise index following `sims`' events.
    static func withPrecisePicker<T: Sendable>(
        _ sims: [Sim], _ body: @Sendable (PickerServer, PreciseRouting) async throws -> T
    ) async throws -> T {
        let config = try config()
        return try await withPicker(engines: sims.map(\.url), configure: { $0.pickerConfig = config }) { picker in
            let precise = try #require(try PreciseRouting(
                config: config, engines: sims.map(\.url),
                options: .init(eventEndpoints: sims.map(\.engine.endpoint), model: Sim.modelName),
                template: try PreciseRouting.template(tokenizer: "bytes4"), logger: quietLogger))
            precise.install(into: picker.router.scheduler)
            return try await withServices([precise.service]) { try await body(picker, precise) }
        }
    }

    /// Waits until every store's subscription to every engine delivers (ZMQ drops what a
    /// subscriber not yet connected would have seen): serves a warm-up prompt on each engine
    /// until its batches arrive, then empties the engines' caches (AllBlocksCleared), so the
    /// index and the caches start equal whatever the replay recovered of the warm-up.
    static func subscribed(_ stores: [PreciseIndexStore], _ sims: [Sim]) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        for (i, sim) in sims.enumerated() {
            var question = 0
            while stores.contains(where: { ($0.feedStatus(engine: sim.address)?.batches ?? 0) == 0 }) {
                try #require(ContinuousClock.now < deadline, "no KV events arrived from \(sim.name)")
                try await serve(90 + i, question, on: sim.url)
                question += 1
                try await Task.sleep(for: .milliseconds(100))
            }
            let reset = try await TestHTTP.request(sim.url + "/reset_prefix_cache", method: .POST)
            #expect(reset.status == 200)
        }
        try await caughtUp(stores, sims)
    }

    /// Waits until `store` holds exactly the blocks each engine's cache holds.
    static func caughtUp(_ stores: [PreciseIndexStore], _ sims: [Sim]) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            var differences: [String] = []
            for sim in sims {
                let held = try await sim.blocks()
                for s in stores where s.hashes(engine: sim.address) != held {
                    let indexed = s.hashes(engine: sim.address)
                    differences.append("\(sim.name): \(held.subtracting(indexed).count) held not indexed, \(indexed.subtracting(held).count) indexed not held, feed \(String(describing: s.feedStatus(engine: sim.address)))")
                }
            }
            if differences.isEmpty { return }
            try #require(ContinuousClock.now < deadline, "the index never caught up with the engines' caches: \(differences)")
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    static func route(_ picker: PickerServer, _ request: InferenceRequest) throws -> EndpointAddress {
        let lease = try picker.router.route(request)
        defer { lease.finished(servedBy: lease.primary, outcome: .answered(status: 200)) }
        return lease.primary
    }

    @Test("where engines publish: listed endpoints, a port offset, or llm-d's kvEventsConfig.zmqEndpoint at each engine's host")
    func eventEndpoints() throws {
        let engines = ["http://10.0.0.1:8000", "http://10.0.0.2:8001/"]
        let template = try PreciseRouting.template(tokenizer: "bytes4")
        func endpoints(_ config: EndpointPickerConfig, _ options: PreciseRouting.Options) throws -> [String] {
            let p = try #require(try PreciseRouting(config: config, engines: engines, options: options, template: template, logger: quietLogger))
            return p.service.configuration.engines.map { "\($0.name) \($0.endpoint) \($0.replayEndpoint ?? "-")" }
        }
        let precise = try Self.config()
        #expect(try endpoints(precise, .init(eventPortOffset: 1000, replayPortOffset: 1100)) == [
            "10.0.0.1:8000 tcp://10.0.0.1:9000 tcp://10.0.0.1:9100", "10.0.0.2:8001 tcp://10.0.0.2:9001 tcp://10.0.0.2:9101"])
        #expect(try endpoints(precise, .init(eventEndpoints: ["tcp://a:1", "tcp://b:2"])) == [
            "10.0.0.1:8000 tcp://a:1 -", "10.0.0.2:8001 tcp://b:2 -"])
        let llmd = try EndpointPickerConfig.load(yaml: """
        plugins:
        - type: precise-prefix-cache-scorer
          parameters:
            kvEventsConfig:
              zmqEndpoint: "tcp://*:5557"
              topicFilter: "kv@"
        - type: max-score-picker
        """)
        #expect(try endpoints(llmd, .init()) == ["10.0.0.1:8000 tcp://10.0.0.1:5557 -", "10.0.0.2:8001 tcp://10.0.0.2:5557 -"])
        #expect(throws: KVRouteError.self) { try endpoints(precise, .init()) }
        #expect(throws: KVRouteError.self) { try endpoints(precise, .init(eventEndpoints: ["tcp://a:1"])) }
        #expect(try PreciseRouting(config: .kvrouteDefault, engines: engines, options: .init(), template: template, logger: quietLogger) == nil)
    }

    @Test("a prompt an engine served is routed back to it once its events arrive; admissions confirm the hashes")
    func followsEvents() async throws {
        let a = try Sim(name: "pa", bufferSteps: 64), b = try Sim(name: "pb", bufferSteps: 64)
        defer { a.process.stop(); b.process.stop() }
        for s in [a, b] { try await waitForOK(s.url + "/health", process: s.process) }
        try await Self.withPrecisePicker([a, b]) { picker, precise in
            try await Self.subscribed([precise.store], [a, b])
            try await Self.serve(1, 0, on: a.url)
            try await Self.serve(2, 0, on: b.url)
            try await Self.caughtUp([precise.store], [a, b])
            #expect(!precise.store.hashes(engine: a.address).isEmpty)
            for q in 1...3 {
                #expect(try Self.route(picker, Self.request(1, q)).description == a.address)
                #expect(try Self.route(picker, Self.request(2, q)).description == b.address)
            }
            // Every admission told the index which first block went where, and it was held.
            let agreement = try #require(precise.store.feedStatus(engine: a.address)?.hashes)
            #expect(agreement.routed == 3)
            #expect(agreement.confirmed == 3)
            #expect(agreement.verdict == .agrees)
        }
    }

    @Test("two pickers fed by the same engines' events make the same choices")
    func replicasAgree() async throws {
        let a = try Sim(name: "ra", bufferSteps: 64), b = try Sim(name: "rb", bufferSteps: 64)
        defer { a.process.stop(); b.process.stop() }
        for s in [a, b] { try await waitForOK(s.url + "/health", process: s.process) }
        let sims = [a, b]
        try await Self.withPrecisePicker(sims) { p1, i1 in
            try await Self.withPrecisePicker(sims) { p2, i2 in
                try await Self.subscribed([i1.store, i2.store], sims)
                var home: [Int: EndpointAddress] = [:]
                let sequence = [(0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (2, 1), (0, 2), (3, 0), (3, 1)]
                for (topic, question) in sequence {
                    let r = Self.request(topic, question)
                    let first = try Self.route(p1, r), second = try Self.route(p2, r)
                    #expect(first == second, "topic \(topic) question \(question)")
                    if let h = home[topic] { #expect(first == h, "topic \(topic) left its engine") } else { home[topic] = first }
                    let sim = try #require(sims.first { $0.address == first.description })
                    try await Self.serve(topic, question, on: sim.url)
                    try await Self.caughtUp([i1.store, i2.store], sims)
                    // Both pickers' scrapes see the engines idle again.
                    try await Task.sleep(for: .milliseconds(200))
                }
                #expect(Set(home.values).count == 2, "the topics spread over both engines")
            }
        }
    }
}

extension PreciseIndexServiceTests.Sim {
    static var modelName: String { PreciseIndexServiceTests.model }
    /// The engine's name in the index: its HTTP address.
    var address: String { "127.0.0.1:\(http)" }
}
