import Foundation
import KVRouteCore
import KVRouteEngineSim

/// One request of a benchmark workload, in both forms a run needs: the OpenAI prompt the
/// router sees and the prompt tokens the engine computes.
public struct BenchRequest: Sendable {
    public var id: Int
    /// Open-loop requests: arrival time in seconds from the start. Follow-ups returned by
    /// ``Workload/next(after:answer:id:)``: the delay after the previous answer (a user's
    /// think time, a tool's run time). nil = sent as soon as its client is free.
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
    /// The next request of `previous`'s client after it was answered with `answer`; its
    /// `arrival`, if any, is the delay after the answer.
    func next(after previous: BenchRequest, answer: [UInt32], id: Int) -> BenchRequest?
    /// Closed-loop concurrency (clients in flight), nil for open loop.
    var concurrency: Int? { get }
    /// The same traffic at `factor` times the arrival rate. By default the arrival times are
    /// divided by `factor` (the same requests, sooner); workloads of sessions instead start
    /// `factor` times as many sessions over the same span, since a session's own pace (think
    /// time, tool time) does not change with load.
    func scaled(by factor: Double) -> any Workload
}

extension Workload {
    public func next(after previous: BenchRequest, answer: [UInt32], id: Int) -> BenchRequest? { nil }
    public func scaled(by factor: Double) -> any Workload { factor == 1 ? self : RateScaledWorkload(base: self, factor: factor) }
}

/// A workload's requests with arrival times divided by `factor`.
public struct RateScaledWorkload: Workload {
    public var base: any Workload
    public var factor: Double

    public var name: String { base.name }
    public var concurrency: Int? { base.concurrency }
    public var settings: [String: String] { base.settings.merging(["rate_scale": String(format: "%.3g", factor)]) { $1 } }

    public func initialRequests() -> [BenchRequest] {
        base.initialRequests().map {
            var r = $0
            r.arrival = r.arrival.map { $0 / factor }
            return r
        }
    }

    public func next(after previous: BenchRequest, answer: [UInt32], id: Int) -> BenchRequest? { base.next(after: previous, answer: answer, id: id) }
    public func scaled(by factor: Double) -> any Workload { base.scaled(by: self.factor * factor) }
}

/// Seeded draws the generators share.
struct Draw {
    var rng: SplitMix64

    init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    /// Uniform in [0, 1).
    mutating func unit() -> Double { rng.unit() }

    /// Exponential with the given mean (Poisson inter-arrival times).
    mutating func exponential(mean: Double) -> Double { -log(1 - rng.unit()) * mean }

    mutating func uniform(_ range: ClosedRange<Double>) -> Double { range.lowerBound + rng.unit() * (range.upperBound - range.lowerBound) }

    mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(rng.next() % UInt64(range.count)) }

    /// Log-uniform: sizes spread over orders of magnitude (tool outputs, documents).
    mutating func logUniform(_ range: ClosedRange<Int>) -> Int {
        Int(exp(uniform(log(Double(range.lowerBound))...log(Double(range.upperBound)))).rounded())
    }

    /// An index in 0..<n with Zipf(s) popularity: index 0 the most popular.
    mutating func zipf(_ n: Int, s: Double) -> Int {
        let weights = (1...n).map { pow(Double($0), -s) }
        var x = unit() * weights.reduce(0, +)
        for (i, w) in weights.enumerated() {
            x -= w
            if x < 0 { return i }
        }
        return n - 1
    }
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
