import Foundation
import KVRouteCore
import KVRouteEngineSim

/// Long documents with many questions each ("chat with this contract / paper / repository"):
/// documents of 16k–64k tokens (log-uniform), each asked `questionsPerDocument` questions by
/// different users; all questions arrive in one random order, Poisson in time. A document
/// is far larger than a question, so where it is cached decides TTFT; all documents
/// together exceed one engine's cache.
public struct LongContextWorkload: Workload {
    public var documents: Int
    public var questionsPerDocument: Int
    public var qps: Double
    public var documentTokens: ClosedRange<Int> = 16_000...64_000
    public var questionTokens: Int = 50
    public var outputTokens: Int = 200
    public var seed: UInt64

    public init(documents: Int = 32, questionsPerDocument: Int = 8, qps: Double = 2, seed: UInt64 = 1) {
        self.documents = documents
        self.questionsPerDocument = questionsPerDocument
        self.qps = qps
        self.seed = seed
    }

    public var name: String { "long-context" }
    public var concurrency: Int? { nil }
    public var settings: [String: String] {
        ["documents": "\(documents)", "questions_per_document": "\(questionsPerDocument)", "qps": String(format: "%.2f", qps),
         "document_tokens": "\(documentTokens.lowerBound)-\(documentTokens.upperBound) log-uniform",
         "question_tokens": "\(questionTokens)", "output_tokens": "\(outputTokens)"]
    }

    public func documentLengths() -> [Int] {
        var d = Draw(seed: SplitMix64.mix(seed, 0xD0C))
        return (0..<documents).map { _ in d.logUniform(documentTokens) }
    }

    public func initialRequests() -> [BenchRequest] {
        let lengths = documentLengths()
        var docs: [Int: String] = [:]
        var order: [(Int, Int)] = []
        for doc in 0..<documents { for q in 0..<questionsPerDocument { order.append((doc, q)) } }
        var rng = SplitMix64(seed: seed)
        order.shuffle(using: &rng)
        var d = Draw(seed: SplitMix64.mix(seed, 0xA77))
        var t = 0.0
        let system = "You answer questions about the document the user provides."
        return order.enumerated().map { i, dq in
            let (doc, q) = dq
            t += d.exponential(mean: 1 / qps)
            let text = docs[doc] ?? SyntheticText.make(tokens: lengths[doc], seed: SplitMix64.mix(seed, 0xD0C0 + UInt64(doc)))
            docs[doc] = text
            let question = SyntheticText.make(tokens: questionTokens, seed: SplitMix64.mix(seed, UInt64(doc) << 16 | UInt64(q)))
            let (prompt, tokens) = PromptBuilder().chat([ChatMessage(role: "system", content: system), ChatMessage(role: "user", content: text + question)])
            return BenchRequest(id: i, arrival: t, session: "doc-\(doc)-q\(q)", client: i, round: 0, prompt: prompt, tokens: tokens, maxTokens: outputTokens, apiKind: .chatCompletions)
        }
    }
}
