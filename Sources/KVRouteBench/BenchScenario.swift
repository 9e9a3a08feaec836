import KVRouteEngineSim

/// A workload on a cluster: what the suite runs. Each scenario says what real traffic it
/// models; its parameters are set from that traffic, never from how a policy fares.
public struct BenchScenario: Sendable {
    public var name: String
    /// The real traffic it stands for.
    public var models: String
    public var workload: any Workload
    /// Step-time multipliers by engine index (2 = half as fast).
    public var slowdowns: [Int: Double] = [:]
    public var failure: EngineFailure?

    public init(name: String, models: String, workload: any Workload, slowdowns: [Int: Double] = [:], failure: EngineFailure? = nil) {
        self.name = name
        self.models = models
        self.workload = workload
        self.slowdowns = slowdowns
        self.failure = failure
    }

    /// The suite, in the order the report shows it.
    public static let suiteNames = ["agentic", "rag", "long-context", "bursty", "heterogeneous", "failover"]

    /// Conversations arriving over time, for the cluster scenarios: production-stack's
    /// multi-round QA (1,000-token system prompt, 5 rounds, 100-token answers), users
    /// arriving as a Poisson process (2 per second nominal) and taking 1–5 s between rounds
    /// (a support chat's quick follow-ups).
    static func chat(users: Int, seed: UInt64) -> MultiTurnWorkload {
        var w = MultiTurnWorkload(users: users, rounds: 5, systemTokens: 1_000, questionTokens: 50, answerTokens: 100, userRate: 2, seed: seed)
        w.thinkTime = 1...5
        return w
    }

    /// A suite scenario by name; `size` scales its request count at the nominal rate (1 = the
    /// documented size): more requests, or sessions starting over a longer span.
    public static func named(_ name: String, size: Double = 1, seed: UInt64 = 1) -> BenchScenario? {
        func n(_ base: Int) -> Int { max(1, Int((Double(base) * size).rounded())) }
        switch name {
        case "agentic":
            return BenchScenario(name: name, models: "tool-using agent sessions: 4 agent profiles with 6k-token shared prompts (Zipf), contexts growing by tool outputs",
                                 workload: AgenticWorkload(sessions: n(30), sessionRate: 1, seed: seed))
        case "rag":
            return BenchScenario(name: name, models: "RAG QA: 4 of 1,000 shared 300-token chunks per question (Zipf), one instruction prompt",
                                 workload: RAGWorkload(requests: n(600), qps: 10, seed: seed))
        case "long-context":
            return BenchScenario(name: name, models: "chat with long documents: 16k-64k-token documents, 8 questions each, in random order",
                                 workload: LongContextWorkload(documents: n(32), questionsPerDocument: 8, qps: 2, seed: seed))
        case "bursty":
            return BenchScenario(name: name, models: "chat for 16 apps arriving in bursts: 20% of every 30 s at 3x the mean rate",
                                 workload: BurstyChatWorkload(requests: n(600), qps: 10, seed: seed))
        case "heterogeneous":
            return BenchScenario(name: name, models: "multi-round chat on mixed hardware: engine 0 runs at half speed",
                                 workload: chat(users: n(60), seed: seed), slowdowns: [0: 2])
        case "failover":
            return BenchScenario(name: name, models: "multi-round chat while engine 0 dies at 40% of the arrivals; its requests fail over",
                                 workload: chat(users: n(60), seed: seed), failure: EngineFailure(engine: 0, atFraction: 0.4))
        default:
            return nil
        }
    }
}
