import Foundation
import KVRouteEngineSim
import KVRouteSimServer
import KVRouteTestSupport
import Testing

/// The simulator serving Llama-3's BPE and the Llama 3.2 template, as `kvroute sim` does by
/// default: prompt token counts are vLLM's (the conformance prompts' figures were read from
/// real vLLM 0.32 by scripts/conformance-vllm.sh).
@Suite("Simulated engine with Llama-3's tokenizer")
struct SimTokenizerTests {
    static let loaded: Result<BPETokenizer, any Error> = Result {
        try BPETokenizer.llama3(from: BPETokenizer.locateLlama3())
    }

    static func withLlama3Sim<T: Sendable>(_ body: @Sendable (BPETokenizer, Llama3ChatTemplate, String) async throws -> T) async throws -> T {
        let bpe = try #require(try? loaded.get(), "Llama-3 tokenizer.json: run scripts/install-test-tools.sh")
        let template = Llama3ChatTemplate(tokenizer: bpe, style: .llama32(date: "01 Dec 2026"))
        var engine = testEngineConfiguration()
        engine.blockSize = 32
        let cluster = try SimCluster(
            engines: 1, basePort: 0, engine: engine, timeScale: 0,
            server: .init(podName: "sim", template: template, enablePromptTokensDetails: true), logger: quietLogger)
        return try await withServices(cluster.services) {
            let ports = await cluster.waitUntilListening()
            return try await body(bpe, template, "http://127.0.0.1:\(ports[0])")
        }
    }

    static let system = String(repeating: "You are a careful assistant for a logistics company. ", count: 30)
        .trimmingCharacters(in: .whitespaces)

    static func usage(_ json: [String: Any]?) throws -> (prompt: Int, cached: Int) {
        let usage = try #require(json?["usage"] as? [String: Any])
        let prompt = try #require(usage["prompt_tokens"] as? Int)
        let cached = (usage["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int ?? 0
        return (prompt, cached)
    }

    @Test("text and chat prompts count the tokens real vLLM counts (202 for the conformance text prompt)")
    func promptCountsMatchVLLM() async throws {
        try await Self.withLlama3Sim { bpe, template, url in
            let text = String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 20)
            let completion = try await TestHTTP.postJSON(url + "/v1/completions", ["model": model, "prompt": text, "max_tokens": 1])
            #expect(try Self.usage(completion.json).prompt == 202)

            let messages = [["role": "system", "content": Self.system], ["role": "user", "content": "Where is my parcel?"]]
            let chat = try await TestHTTP.postJSON(url + "/v1/chat/completions", ["model": model, "messages": messages, "max_tokens": 1])
            let rendered = template.render([ChatTurn(role: "system", content: Self.system), ChatTurn(role: "user", content: "Where is my parcel?")])
            #expect(try Self.usage(chat.json).prompt == rendered.count)
            #expect(rendered.count == 340, "Llama 3.2 template, \"01 Dec 2026\": \(rendered.count) tokens")
            #expect(Array(rendered.prefix(4)) == [128_000, 128_006, 9125, 128_007], "begin_of_text, header, \"system\", end_header")

            let tokenized = try await TestHTTP.postJSON(url + "/tokenize", ["model": model, "messages": messages])
            #expect((tokenized.json?["tokens"] as? [Int]) == rendered.map(Int.init))
            #expect(bpe.decode(rendered).contains("Today Date: 01 Dec 2026\n\nYou are a careful"))
        }
    }

    @Test("a follow-up turn quoting the generated answer hits the blocks the answer filled")
    func answersReencode() async throws {
        try await Self.withLlama3Sim { bpe, _, url in
            var messages: [[String: Any]] = [["role": "system", "content": Self.system], ["role": "user", "content": "Where is my parcel?"]]
            let first = try await TestHTTP.postJSON(url + "/v1/chat/completions", ["model": model, "messages": messages, "max_tokens": 64])
            let answer = try #require(((first.json?["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String)
            #expect(bpe.encode(answer).count == 64, "64 generated tokens re-encode to 64: \(answer.prefix(80))")
            let (prompt1, _) = try Self.usage(first.json)
            messages += [["role": "assistant", "content": answer], ["role": "user", "content": "When will it arrive?"]]
            let second = try await TestHTTP.postJSON(url + "/v1/chat/completions", ["model": model, "messages": messages, "max_tokens": 1])
            let (_, cached) = try Self.usage(second.json)
            // The first prompt's full blocks stay cached; the answer's blocks add to them.
            #expect(cached >= prompt1 / 32 * 32, "cached \(cached) of a history whose first prompt was \(prompt1) tokens")
        }
    }
}
