import Foundation
import KVRouteCore
import KVRouteEngineSim

/// Tool-using agents (coding agents, support agents with tools): sessions arrive as a
/// Poisson process, each runs one of a few agent profiles whose long system prompts
/// (instructions plus tool schemas, 4–8k tokens in the agents people run) are shared by
/// every session of that profile, with Zipf popularity (a few agents carry most traffic).
/// A session is a loop of turns: the model answers with a short tool call, the tool runs
/// for a while, and its output (a file, a search result, a log: sizes spread over an order
/// of magnitude) is appended, so the context grows turn after turn.
public struct AgenticWorkload: Workload {
    public var sessions: Int
    /// Sessions starting per second.
    public var sessionRate: Double
    public var profiles: Int = 4
    /// Zipf exponent of profile popularity.
    public var profileSkew: Double = 1.0
    public var systemTokens: Int = 6_000
    public var taskTokens: Int = 300
    /// Turns per session (model calls), uniform.
    public var turns: ClosedRange<Int> = 4...12
    /// Tool output per turn, log-uniform.
    public var toolOutputTokens: ClosedRange<Int> = 200...3_000
    /// The model's tool call per turn.
    public var callTokens: Int = 80
    /// Seconds a tool runs before its output comes back, uniform.
    public var toolSeconds: ClosedRange<Double> = 0.5...3
    public var seed: UInt64

    public init(sessions: Int = 60, sessionRate: Double = 1, seed: UInt64 = 1) {
        self.sessions = sessions
        self.sessionRate = sessionRate
        self.seed = seed
    }

    public var name: String { "agentic" }
    public var concurrency: Int? { nil }
    public var settings: [String: String] {
        ["sessions": "\(sessions)", "session_rate_per_s": String(format: "%.2f", sessionRate), "profiles": "\(profiles)",
         "profile_zipf_s": "\(profileSkew)", "system_tokens": "\(systemTokens)", "task_tokens": "\(taskTokens)",
         "turns": "\(turns.lowerBound)-\(turns.upperBound)", "tool_output_tokens": "\(toolOutputTokens.lowerBound)-\(toolOutputTokens.upperBound) log-uniform",
         "call_tokens": "\(callTokens)", "tool_s": "\(toolSeconds.lowerBound)-\(toolSeconds.upperBound)"]
    }

    func profileText(_ p: Int) -> String { SyntheticText.make(tokens: systemTokens, seed: SplitMix64.mix(seed, 0xA6E0 + UInt64(p))) }

    /// A session's own draws: profile, turn count.
    func plan(_ session: Int) -> (profile: Int, turns: Int) {
        var d = Draw(seed: SplitMix64.mix(seed, 0x5E55 + UInt64(session)))
        return (d.zipf(profiles, s: profileSkew), d.int(turns))
    }

    /// `factor` times as many sessions over the same span.
    public func scaled(by factor: Double) -> any Workload {
        var w = self
        w.sessions = max(1, Int((Double(sessions) * factor).rounded()))
        w.sessionRate = sessionRate * factor
        return w
    }

    public func initialRequests() -> [BenchRequest] {
        var d = Draw(seed: seed)
        var t = 0.0
        let texts = (0..<profiles).map(profileText)
        return (0..<sessions).map { s in
            t += d.exponential(mean: 1 / sessionRate)
            let task = SyntheticText.make(tokens: taskTokens, seed: SplitMix64.mix(seed, 0x7A5C + UInt64(s)))
            let (prompt, tokens) = PromptBuilder().chat([ChatMessage(role: "system", content: texts[plan(s).profile]), ChatMessage(role: "user", content: task)])
            return BenchRequest(id: s, arrival: t, session: "agent-\(s)", client: s, round: 0, prompt: prompt, tokens: tokens, maxTokens: callTokens, apiKind: .chatCompletions)
        }
    }

    public func next(after previous: BenchRequest, answer: [UInt32], id: Int) -> BenchRequest? {
        guard previous.round + 1 < plan(previous.client).turns, case .messages(let msgs) = previous.prompt else { return nil }
        var d = Draw(seed: SplitMix64.mix(seed, UInt64(previous.client) << 20 | UInt64(previous.round)))
        let output = SyntheticText.make(tokens: d.logUniform(toolOutputTokens), seed: SplitMix64.mix(seed, UInt64(id) ^ 0x7001))
        let history = msgs + [ChatMessage(role: "assistant", content: ApproximateTokenizer().decode(answer)), ChatMessage(role: "user", content: output)]
        let (prompt, tokens) = PromptBuilder().chat(history)
        return BenchRequest(id: id, arrival: d.uniform(toolSeconds), session: previous.session, client: previous.client, round: previous.round + 1,
                            prompt: prompt, tokens: tokens, maxTokens: callTokens, apiKind: .chatCompletions)
    }
}
