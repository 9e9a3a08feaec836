import Foundation
import KVRouteCore
import KVRouteEngineSim

/// The cache-hit ramp as a workload: one session sends the same long prompt `requests` times.
public struct RampWorkload: Workload {
    public var requests = 80
    public var promptTokens = 1_000
    public var outputTokens = 16
    public var interval = 0.3
    public var seed: UInt64 = 1
    public init() {}

    public var name: String { "ramp" }
    public var concurrency: Int? { nil }
    public var settings: [String: String] {
        ["requests": "\(requests)", "prompt_tokens": "\(promptTokens)", "output_tokens": "\(outputTokens)", "interval_s": "\(interval)"]
    }

    public func initialRequests() -> [BenchRequest] {
        let (prompt, tokens) = PromptBuilder().chat([
            ChatMessage(role: "system", content: SyntheticText.make(tokens: promptTokens, seed: seed)),
            ChatMessage(role: "user", content: "Summarise the plan."),
        ])
        return (0..<requests).map {
            BenchRequest(id: $0, arrival: Double($0) * interval, session: "ramp", client: 0, round: $0, prompt: prompt, tokens: tokens, maxTokens: outputTokens, apiKind: .chatCompletions)
        }
    }
}

/// Groups of prompts sharing a long system prefix (SGLang's and llm-d-benchmark's
/// shared-prefix sets). Each prompt is its own session; arrivals are Poisson at `qps`.
public struct SharedPrefixWorkload: Workload {
    public var groups: Int
    public var promptsPerGroup: Int
    public var prefixTokens: Int
    public var questionTokens: Int
    public var outputTokens: Int
    public var qps: Double
    public var seed: UInt64

    public init(groups: Int = 64, promptsPerGroup: Int = 16, prefixTokens: Int = 2048, questionTokens: Int = 128, outputTokens: Int = 256, qps: Double = 20, seed: UInt64 = 1) {
        self.groups = groups
        self.promptsPerGroup = promptsPerGroup
        self.prefixTokens = prefixTokens
        self.questionTokens = questionTokens
        self.outputTokens = outputTokens
        self.qps = qps
        self.seed = seed
    }

    public static func preset(_ name: String) -> SharedPrefixWorkload? {
        switch name {
        case "sglang": SharedPrefixWorkload(groups: 64, promptsPerGroup: 16, prefixTokens: 2048, questionTokens: 128, outputTokens: 256)
        case "llm-d": SharedPrefixWorkload(groups: 32, promptsPerGroup: 32, prefixTokens: 2048, questionTokens: 256, outputTokens: 256)
        default: nil
        }
    }

    public var name: String { "shared-prefix" }
    public var concurrency: Int? { nil }
    public var settings: [String: String] {
        ["groups": "\(groups)", "prompts_per_group": "\(promptsPerGroup)", "prefix_tokens": "\(prefixTokens)",
         "question_tokens": "\(questionTokens)", "output_tokens": "\(outputTokens)", "qps": String(format: "%.2f", qps)]
    }

    public func initialRequests() -> [BenchRequest] {
        let builder = PromptBuilder()
        let prefixes = (0..<groups).map { SyntheticText.make(tokens: prefixTokens, seed: seed &* 1_000_003 &+ UInt64($0)) }
        var order: [(Int, Int)] = []
        for g in 0..<groups { for p in 0..<promptsPerGroup { order.append((g, p)) } }
        var rng = SplitMix64(seed: seed)
        order.shuffle(using: &rng)
        var t = 0.0
        return order.enumerated().map { i, gp in
            let (g, p) = gp
            t += -log(1 - rng.unit()) / qps
            let question = SyntheticText.make(tokens: questionTokens, seed: seed ^ UInt64(g * 100_003 + p + 7))
            let (prompt, tokens) = builder.chat([ChatMessage(role: "system", content: prefixes[g]), ChatMessage(role: "user", content: question)])
            return BenchRequest(id: i, arrival: t, session: "g\(g)-p\(p)", client: i, round: 0, prompt: prompt, tokens: tokens, maxTokens: outputTokens, apiKind: .chatCompletions)
        }
    }
}

/// Users holding conversations: a shared system prompt, then rounds whose history grows with
/// each question and the engine's actual answer (production-stack's multi-round QA).
/// Closed loop by default (`activeUsers` at once); with `userRate` set, users arrive as a
/// Poisson process and each waits a think time in `thinkTime` before the next round.
public struct MultiTurnWorkload: Workload {
    public var users: Int
    public var rounds: Int
    public var systemTokens: Int
    public var questionTokens: Int
    public var answerTokens: Int
    /// Users active at once; a finished user's slot goes to the next user.
    public var activeUsers: Int
    /// New users per second (open loop); nil: closed loop.
    public var userRate: Double?
    /// Seconds a user reads and types before the next round (open loop).
    public var thinkTime: ClosedRange<Double> = 2...10
    public var seed: UInt64

    public init(users: Int = 10, rounds: Int = 5, systemTokens: Int = 1000, questionTokens: Int = 50, answerTokens: Int = 100, activeUsers: Int? = nil, userRate: Double? = nil, seed: UInt64 = 1) {
        self.users = users
        self.rounds = rounds
        self.systemTokens = systemTokens
        self.questionTokens = questionTokens
        self.answerTokens = answerTokens
        self.activeUsers = activeUsers ?? users
        self.userRate = userRate
        self.seed = seed
    }

    public var name: String { "multi-turn" }
    public var concurrency: Int? { userRate == nil ? activeUsers : nil }
    public var settings: [String: String] {
        var s = ["users": "\(users)", "rounds": "\(rounds)", "system_tokens": "\(systemTokens)", "question_tokens": "\(questionTokens)",
                 "answer_tokens": "\(answerTokens)"]
        if let userRate {
            s["user_rate_per_s"] = String(format: "%.2f", userRate)
            s["think_time_s"] = "\(thinkTime.lowerBound)-\(thinkTime.upperBound)"
        } else {
            s["active_users"] = "\(activeUsers)"
        }
        return s
    }

    var system: String { SyntheticText.make(tokens: systemTokens, seed: seed &* 7_919) }

    func question(user: Int, round: Int) -> String {
        SyntheticText.make(tokens: questionTokens, seed: seed ^ UInt64(user * 1_000 + round + 11))
    }

    func request(id: Int, user: Int, round: Int, history: [ChatMessage], arrival: Double?) -> BenchRequest {
        let messages = history + [ChatMessage(role: "user", content: question(user: user, round: round))]
        let (prompt, tokens) = PromptBuilder().chat(messages)
        return BenchRequest(id: id, arrival: arrival, session: "user-\(user)", client: user, round: round, prompt: prompt, tokens: tokens, maxTokens: answerTokens, apiKind: .chatCompletions)
    }

    /// Open loop: `factor` times as many users over the same span; closed loop: unchanged
    /// arrival times (there are none), so the default applies.
    public func scaled(by factor: Double) -> any Workload {
        guard let userRate else { return RateScaledWorkload(base: self, factor: factor) }
        var w = self
        w.users = max(1, Int((Double(users) * factor).rounded()))
        w.userRate = userRate * factor
        w.activeUsers = w.users
        return w
    }

    public func initialRequests() -> [BenchRequest] {
        var draw = Draw(seed: seed &+ 0x5EED)
        var t = 0.0
        return (0..<users).map {
            var arrival: Double?
            if let userRate {
                t += draw.exponential(mean: 1 / userRate)
                arrival = t
            }
            return request(id: $0, user: $0, round: 0, history: [ChatMessage(role: "system", content: system)], arrival: arrival)
        }
    }

    public func next(after previous: BenchRequest, answer: [UInt32], id: Int) -> BenchRequest? {
        guard previous.round + 1 < rounds, case .messages(let msgs) = previous.prompt else { return nil }
        let history = msgs + [ChatMessage(role: "assistant", content: ApproximateTokenizer().decode(answer))]
        var think: Double?
        if userRate != nil {
            var draw = Draw(seed: SplitMix64.mix(seed, UInt64(previous.client * 1_000 + previous.round)))
            think = draw.uniform(thinkTime)
        }
        return request(id: id, user: previous.client, round: previous.round + 1, history: history, arrival: think)
    }
}

/// A Mooncake-format trace: `{"timestamp" (ms), "input_length", "output_length", "hash_ids"}`
/// per line, each hash id one 512-token block. Block contents are derived from the id, so
/// equal ids share prefixes exactly as in the trace.
public struct TraceWorkload: Workload {
    public struct Entry: Sendable {
        public var timestamp: Double
        public var inputLength: Int
        public var outputLength: Int
        public var hashIDs: [Int]
    }

    public var entries: [Entry]
    public var path: String
    public var speedup: Double
    public var blockTokens = 512
    public var maxOutputTokens: Int?

    /// The most tokens one trace line may ask for (the longest contexts served today are
    /// about 10^6 tokens); larger values are damage, not workload.
    public static let maxTokensPerRequest = 1 << 22

    public init(path: String, speedup: Double = 1, maxRequests: Int? = nil, maxOutputTokens: Int? = nil) throws {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw KVRouteError(code: .invalidConfiguration, message: "cannot read trace \(path)", cause: error)
        }
        try self.init(text: text, path: path, speedup: speedup, maxRequests: maxRequests, maxOutputTokens: maxOutputTokens)
    }

    /// Parses a trace's text; `path` names it in errors and the report.
    public init(text: String, path: String, speedup: Double = 1, maxRequests: Int? = nil, maxOutputTokens: Int? = nil) throws {
        var entries: [Entry] = []
        for (n, line) in text.split(separator: "\n").enumerated() where !line.isEmpty {
            guard let entry = Self.entry(line) else {
                throw KVRouteError(code: .invalidConfiguration, message: "\(path):\(n + 1): not a Mooncake trace line (timestamp in ms, input_length and output_length from 0 to \(Self.maxTokensPerRequest) tokens, hash_ids of non-negative integers)")
            }
            entries.append(entry)
            if let maxRequests, entries.count >= maxRequests { break }
        }
        guard !entries.isEmpty else { throw KVRouteError(code: .invalidConfiguration, message: "\(path) holds no requests") }
        self.entries = entries
        self.path = path
        self.speedup = speedup
        self.maxOutputTokens = maxOutputTokens
    }

    /// One line, or nil when a field is missing, of the wrong type or out of range.
    static func entry(_ line: Substring) -> Entry? {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let ts = Self.number(obj["timestamp"]), abs(ts) < 1e15,
              let input = Self.count(obj["input_length"]), let output = Self.count(obj["output_length"]),
              let list = obj["hash_ids"] as? [Any] else { return nil }
        var ids: [Int] = []
        ids.reserveCapacity(list.count)
        for item in list {
            // A hash id seeds a block's text: any non-negative integer.
            guard let id = Self.integer(item), id >= 0 else { return nil }
            ids.append(id)
        }
        return Entry(timestamp: ts, inputLength: input, outputLength: output, hashIDs: ids)
    }

    static func number(_ value: Any?) -> Double? { (value as? NSNumber)?.doubleValue }

    /// An integral JSON number that fits an Int.
    static func integer(_ value: Any?) -> Int? {
        if let i = value as? Int { return i }
        return number(value).flatMap { Int(exactly: $0) }
    }

    /// A token count: an integer from 0 to ``maxTokensPerRequest``.
    static func count(_ value: Any?) -> Int? {
        guard let n = integer(value), (0...maxTokensPerRequest).contains(n) else { return nil }
        return n
    }

    public var name: String { "trace:" + (path as NSString).lastPathComponent }
    public var concurrency: Int? { nil }
    public var settings: [String: String] {
        ["requests": "\(entries.count)", "speedup": "\(speedup)", "block_tokens": "\(blockTokens)",
         "duration_s": String(format: "%.1f", ((entries.last?.timestamp ?? 0) - (entries.first?.timestamp ?? 0)) / 1000 / speedup)]
    }

    public func initialRequests() -> [BenchRequest] {
        let builder = PromptBuilder()
        let t0 = entries.first?.timestamp ?? 0
        var blockText: [Int: String] = [:]
        return entries.enumerated().map { i, e in
            var text = ""
            text.reserveCapacity(min(e.inputLength, e.hashIDs.count * blockTokens) * 4)
            for (k, id) in e.hashIDs.enumerated() {
                let remaining = e.inputLength - k * blockTokens
                guard remaining > 0 else { break }
                let block: String
                if let b = blockText[id] { block = b } else {
                    block = SyntheticText.make(tokens: blockTokens, seed: UInt64(id) &* 0x9E37_79B9 &+ 17)
                    blockText[id] = block
                }
                text += remaining >= blockTokens ? block : String(block.prefix(remaining * 4))
            }
            let (prompt, tokens) = builder.completion(text)
            let out = max(1, min(e.outputLength, maxOutputTokens ?? Int.max))
            return BenchRequest(id: i, arrival: (e.timestamp - t0) / 1000 / speedup, session: nil, client: i, round: 0,
                                prompt: prompt, tokens: tokens, maxTokens: out, apiKind: .completions)
        }
    }
}
