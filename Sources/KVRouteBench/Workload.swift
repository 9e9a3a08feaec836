import KVRouteCore
import KVRouteEngineSim

/// One request of a benchmark workload, in both forms a run needs: the OpenAI prompt the
/// router sees and the prompt tokens the engine computes.
public struct BenchRequest: Sendable {
    public var id: Int
    /// Arrival time in seconds for open-loop workloads; nil = sent when its client is free.
    public var arrival: Double?
    public var session: String?
    /// Which client (closed loop) or user (multi-turn) sends it.
    public var client: Int
    public var round: Int
    public var prompt: PromptContent
    public var tokens: [UInt32]
    public var maxTokens: Int
    public var apiKind: APIKind
}

/// A workload: the requests known up front, and — for conversations — the follow-up a
/// client sends once its previous request is answered.
public protocol Workload: Sendable {
    var name: String { get }
    /// Human-readable settings for the report.
    var settings: [String: String] { get }
    /// Requests available at the start (open loop: all of them, with arrival times).
    func initialRequests() -> [BenchRequest]
    /// The next request of `previous`'s client after it was answered with `answer`.
    func next(after previous: BenchRequest, answer: [UInt32], id: Int) -> BenchRequest?
    /// Closed-loop concurrency (clients in flight), nil for open loop.
    var concurrency: Int? { get }
}

extension Workload {
    public func next(after previous: BenchRequest, answer: [UInt32], id: Int) -> BenchRequest? { nil }
}

/// Deterministic text: `tokens` tokens of 4 characters each from a seeded word stream, so the
/// engine's tokenizer gives exactly `tokens` tokens and equal seeds give equal text.
public enum SyntheticText {
    static let syllables = ["ka", "lo", "mi", "re", "su", "ta", "ne", "vo", "pi", "ra", "de", "fu", "go", "hi", "ju", "zo"]

    public static func make(tokens: Int, seed: UInt64) -> String {
        var rng = SplitMix64(seed: seed)
        var out = ""
        out.reserveCapacity(tokens * 4)
        for _ in 0..<tokens {
            let r = rng.next()
            out += syllables[Int(r & 15)]
            out += syllables[Int((r >> 4) & 15)]
        }
        return out
    }
}

/// Renders chat prompts for both the router (messages) and the engine (Llama-3 tokens).
struct PromptBuilder: Sendable {
    let template = Llama3ChatTemplate()

    func chat(_ messages: [ChatMessage]) -> (PromptContent, [UInt32]) {
        (.messages(messages), template.render(messages.map { ChatTurn(role: $0.role, content: $0.content) }))
    }

    func completion(_ text: String) -> (PromptContent, [UInt32]) {
        (.text(text), template.renderCompletion(text))
    }
}
