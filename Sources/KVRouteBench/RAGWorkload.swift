import Foundation
import KVRouteCore
import KVRouteEngineSim

/// Retrieval-augmented QA over a shared document pool (an enterprise knowledge base): each
/// question retrieves `retrieved` chunks, most relevant first, with Zipf popularity over the
/// pool (a few documents answer most questions), behind one shared instruction prompt.
/// Prompts share the instructions, and beyond them only when the top chunks coincide:
/// prefix caching helps exactly as far as retrieval repeats itself. Poisson arrivals.
public struct RAGWorkload: Workload {
    public var requests: Int
    public var qps: Double
    public var chunks: Int = 1_000
    public var chunkTokens: Int = 300
    public var retrieved: Int = 4
    /// Zipf exponent of chunk popularity.
    public var chunkSkew: Double = 1.1
    public var systemTokens: Int = 400
    public var questionTokens: Int = 40
    public var outputTokens: Int = 150
    public var seed: UInt64

    public init(requests: Int = 600, qps: Double = 10, seed: UInt64 = 1) {
        self.requests = requests
        self.qps = qps
        self.seed = seed
    }

    public var name: String { "rag" }
    public var concurrency: Int? { nil }
    public var settings: [String: String] {
        ["requests": "\(requests)", "qps": String(format: "%.2f", qps), "chunks": "\(chunks)", "chunk_tokens": "\(chunkTokens)",
         "retrieved": "\(retrieved)", "chunk_zipf_s": "\(chunkSkew)", "system_tokens": "\(systemTokens)",
         "question_tokens": "\(questionTokens)", "output_tokens": "\(outputTokens)"]
    }

    public func initialRequests() -> [BenchRequest] {
        var d = Draw(seed: seed)
        let system = SyntheticText.make(tokens: systemTokens, seed: SplitMix64.mix(seed, 0x5A6))
        var chunkText: [Int: String] = [:]
        var arrivals = PoissonArrivals.constant(qps)
        return (0..<requests).map { i in
            let t = arrivals.next(using: &d)
            var picked: [Int] = []
            while picked.count < min(retrieved, chunks) {
                let c = d.zipf(chunks, s: chunkSkew)
                if !picked.contains(c) { picked.append(c) }
            }
            let context = picked.map { c in
                if let text = chunkText[c] { return text }
                let text = SyntheticText.make(tokens: chunkTokens, seed: SplitMix64.mix(seed, 0xC4C + UInt64(c)))
                chunkText[c] = text
                return text
            }.joined()
            let question = SyntheticText.make(tokens: questionTokens, seed: SplitMix64.mix(seed, 0x9E5 + UInt64(i)))
            let (prompt, tokens) = PromptBuilder().chat([ChatMessage(role: "system", content: system), ChatMessage(role: "user", content: context + question)])
            return BenchRequest(id: i, arrival: t, session: nil, client: i, round: 0, prompt: prompt, tokens: tokens, maxTokens: outputTokens, apiKind: .chatCompletions)
        }
    }
}
