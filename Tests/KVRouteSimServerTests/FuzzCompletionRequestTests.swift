import Foundation
import KVRouteEngineSim
import KVRouteTestSupport
import Testing
@testable import KVRouteSimServer

/// What the simulated engine parses from clients: `/v1/chat/completions` and
/// `/v1/completions` bodies, in-process through the parser and over HTTP through the whole
/// engine. Every body is answered (2xx or an OpenAI error); none traps or hangs.
@Suite("Fuzz corpus: simulator request bodies")
struct FuzzCompletionRequestTests {
    static let keys = ["model", "messages", "prompt", "role", "content", "type", "text", "max_tokens", "max_completion_tokens", "n", "stream", "stream_options", "include_usage"]

    static let seeds: [FuzzJSON] = [
        .object([("model", .string("m")), ("messages", .array([
            .object([("role", .string("system")), ("content", .string("Be terse."))]),
            .object([("role", .string("user")), ("content", .array([.object([("type", .string("text")), ("text", .string("hi"))])]))]),
        ])), ("max_tokens", .number("4")), ("stream", .bool(true)), ("stream_options", .object([("include_usage", .bool(true))]))]),
        .object([("model", .string("m")), ("prompt", .string("Once upon")), ("max_completion_tokens", .number("3")), ("n", .number("1"))]),
        .object([("model", .string("m")), ("prompt", .array([.number("1"), .number("2"), .number("4294967295")])), ("max_tokens", .number("2"))]),
        .object([("model", .string("m")), ("prompt", .array([.string("one")]))]),
    ]

    static func body(_ r: inout FuzzRandom) -> [UInt8] { FuzzJSON.document(&r, seeds: seeds, keys: keys) }

    @Test("bodies through the parser: a request or an OpenAI error")
    func parser() async {
        await #expect(processExitsWith: .success) {
            Fuzz.run("sim-completion-request", cases: 3_000, generate: { r in Self.body(&r) }) { bytes in
                for kind in [CompletionRequest.Kind.chat, .completion] {
                    do {
                        let request = try CompletionRequest.parse(Data(bytes), kind: kind)
                        #expect(!request.model.isEmpty)
                        #expect((request.maxTokens ?? 1) >= 1)
                    } catch let e as OpenAIError {
                        #expect(e.status.code == 400)
                    } catch {
                        Issue.record("not an OpenAIError: \(error)")
                    }
                }
            }
        }
    }

    @Test("bodies over HTTP through the engine: every one is answered")
    func overHTTP() async {
        await #expect(processExitsWith: .success) {
            // A short context: a huge max_tokens generates at most a few hundred tokens.
            let engine = EngineConfiguration(numGPUBlocks: 512, maxNumSeqs: 16, maxModelLen: 512, hashSeed: "0", defaultMaxTokens: 4)
            try await withSimCluster(engines: 1, engine: engine, timeScale: 0.001) { _, urls in
                var bodies: [[UInt8]] = []
                Fuzz.run("sim-completion-http", cases: 150, generate: { r -> [UInt8] in
                    var b = Self.body(&r)
                    // Keep answers short: the property is about parsing, not generating.
                    if r.chance(0.7), var text = String(bytes: b, encoding: .utf8), let range = text.range(of: "\"max_tokens\":4") {
                        text.replaceSubrange(range, with: "\"max_tokens\":" + r.pick(FuzzText.numberLiterals))
                        b = Array(text.utf8)
                    }
                    return b.count > 1 << 20 ? Array(b.prefix(1 << 20)) : b
                }) { bodies.append($0) }
                for (i, b) in bodies.enumerated() {
                    let path = i % 2 == 0 ? "/v1/chat/completions" : "/v1/completions"
                    let res = try await TestHTTP.request(urls[0] + path, method: .POST, body: String(decoding: b, as: UTF8.self), timeout: .seconds(30))
                    #expect((200..<500).contains(res.status), "HTTP \(res.status) for case \(i)")
                }
            }
        }
    }
}
