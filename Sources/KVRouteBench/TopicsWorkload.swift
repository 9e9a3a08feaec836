import Foundation
import KVRouteCore
import KVRouteEngineSim

/// The prefix-routing demonstration: `topics` subjects, each with a long shared preamble
/// (a product manual, a policy handbook), asked about in random order by `users` users. A
/// user asks about several topics, so session affinity cannot keep a topic together; only
/// routing by prefix sends each topic back to the engine that holds its preamble.
public struct TopicsWorkload: Workload {
    public var topics: Int
    public var questions: Int
    public var users: Int
    public var preambleTokens: Int
    public var questionTokens = 30
    public var outputTokens = 8
    public var qps: Double
    public var seed: UInt64

    public init(topics: Int = 6, questions: Int = 72, users: Int = 24, preambleTokens: Int = 2_000, qps: Double = 4, seed: UInt64 = 1) {
        self.topics = topics
        self.questions = questions
        self.users = users
        self.preambleTokens = preambleTokens
        self.qps = qps
        self.seed = seed
    }

    public var name: String { "topics" }
    public var concurrency: Int? { nil }
    public var settings: [String: String] {
        ["topics": "\(topics)", "questions": "\(questions)", "users": "\(users)", "preamble_tokens": "\(preambleTokens)", "qps": "\(qps)"]
    }

    /// The topic of each request, by id.
    public func topicOfRequest() -> [Int] {
        var d = Draw(seed: SplitMix64.mix(seed, 0x70B1C))
        return (0..<questions).map { _ in d.int(0...(topics - 1)) }
    }

    public func initialRequests() -> [BenchRequest] {
        let preambles = (0..<topics).map { SyntheticText.make(tokens: preambleTokens, seed: SplitMix64.mix(seed, 0x7E0 + UInt64($0))) }
        var d = Draw(seed: seed)
        var t = 0.0
        return topicOfRequest().enumerated().map { i, topic in
            t += d.exponential(mean: 1 / qps)
            let user = d.int(0...(users - 1))
            let question = SyntheticText.make(tokens: questionTokens, seed: SplitMix64.mix(seed, 0x9A + UInt64(i)))
            let (prompt, tokens) = PromptBuilder().chat([ChatMessage(role: "system", content: preambles[topic]), ChatMessage(role: "user", content: question)])
            return BenchRequest(id: i, arrival: t, session: "user-\(user)", client: user, round: 0, prompt: prompt, tokens: tokens, maxTokens: outputTokens, apiKind: .chatCompletions)
        }
    }

    /// Per topic: where its requests went and what a hit and a miss cost.
    public func table(_ run: PolicyRun, engineNames: [String]) -> String {
        let topicOf = topicOfRequest()
        let header = ["topic", "asked", "held by", "served there", "engines used", "misses", "TTFT miss p50", "hits", "TTFT hit p50"]
        var rows = [header]
        var allHits: [Double] = [], allMisses: [Double] = []
        for topic in 0..<topics {
            let o = run.outcomes.filter { $0.id < topicOf.count && topicOf[$0.id] == topic }.sorted { $0.arrival < $1.arrival }
            var count: [Int: Int] = [:]
            for x in o { if let e = x.engine { count[e, default: 0] += 1 } }
            let holder = count.max { $0.value == $1.value ? $0.key > $1.key : $0.value < $1.value }
            let hit = { (x: RequestOutcome) in x.cachedTokens >= self.preambleTokens / 2 }
            let hits = o.filter(hit).map { $0.ttft * 1000 }.sorted(), misses = o.filter { !hit($0) }.map { $0.ttft * 1000 }.sorted()
            allHits += hits
            allMisses += misses
            rows.append([
                "topic \(topic + 1)", "\(o.count)", holder.map { engineNames.indices.contains($0.key) ? engineNames[$0.key] : "engine \($0.key)" } ?? "n/a",
                holder.map { String(format: "%.0f%%", 100 * Double($0.value) / Double(max(o.count, 1))) } ?? "n/a",
                "\(count.count)", "\(misses.count)", misses.isEmpty ? "-" : BenchReport.ms(Stats.percentile(misses, 0.5)),
                "\(hits.count)", hits.isEmpty ? "-" : BenchReport.ms(Stats.percentile(hits, 0.5)),
            ])
        }
        let w = header.indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
        var lines: [String] = []
        for (i, row) in rows.enumerated() {
            lines.append("  " + row.enumerated().map { c, v in c == 0 ? v.padding(toLength: w[c], withPad: " ", startingAt: 0) : String(repeating: " ", count: w[c] - v.count) + v }.joined(separator: "  "))
            if i == 0 { lines.append("  " + w.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
        }
        allHits.sort()
        allMisses.sort()
        lines.append(String(format: "  all topics: %d misses (TTFT p50 %@), %d hits (TTFT p50 %@); %d failed", allMisses.count,
                            allMisses.isEmpty ? "-" : BenchReport.ms(Stats.percentile(allMisses, 0.5)), allHits.count,
                            allHits.isEmpty ? "-" : BenchReport.ms(Stats.percentile(allHits, 0.5)), run.rejected))
        return lines.joined(separator: "\n")
    }
}
