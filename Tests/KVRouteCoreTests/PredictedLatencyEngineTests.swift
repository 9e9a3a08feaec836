import Foundation
import Testing
@testable import KVRouteCore
import KVRouteEngineSim

/// Measures the predicted-latency profile against kvroute's hand-tuned default and llm-d's
/// approx-prefix default on in-process engines in virtual time: agentic sessions (a shared
/// tool preamble, growing histories, tool outputs appended each turn), on a homogeneous pool
/// and on one where an engine runs at half speed. Prints TTFT percentiles and the prefix-cache
/// hit rate (virtual time) and the wall time per decision (of the build under test);
/// asserts only that every request was answered.
@Suite("Predicted latency: engines")
struct PredictedLatencyEngineTests {
    struct Figures: CustomStringConvertible {
        var answered = 0
        var ttfts: [Double] = []
        var prompt = 0, cached = 0
        var e2e = 0.0
        var decisions = 0
        var decisionSeconds = 0.0
        func percentile(_ p: Double) -> Double {
            let s = ttfts.sorted()
            return s.isEmpty ? 0 : s[min(s.count - 1, Int(Double(s.count) * p))]
        }
        var description: String {
            let hit = Double(cached) / Double(max(prompt, 1))
            return "answered \(answered)  TTFT p50 \(ms(percentile(0.5))) p90 \(ms(percentile(0.9))) p99 \(ms(percentile(0.99)))  mean e2e \(ms(e2e / Double(max(answered, 1))))  hit \(String(format: "%.3f", hit))  decision \(String(format: "%.1f", decisionSeconds / Double(max(decisions, 1)) * 1e6)) µs (this build)"
        }
        func ms(_ s: Double) -> String { String(format: "%.0f ms", s * 1000) }
    }

    /// Four characters per token, so the router's character blocks and the engine's token
    /// blocks cover the same prefix.
    static func text(_ tokens: ArraySlice<UInt32>) -> String {
        var s = ""
        s.reserveCapacity(tokens.count * 4)
        for t in tokens {
            let v = String(t % 46_656, radix: 36)
            s += String(repeating: "0", count: 3 - v.count) + v + " "
        }
        return s
    }

    static func run(_ yaml: String, slowdowns: [Double], sessions: Int, turns: Int, seed: UInt64) throws -> Figures {
        let scheduler = try Scheduler(config: EndpointPickerConfig.load(yaml: yaml), randomSeed: seed)
        let addresses = slowdowns.indices.map { EndpointAddress(host: "10.9.0.\($0 + 1)", port: 8000) }
        var cores = try slowdowns.enumerated().map { i, s in
            var c = try EngineCore(configuration: EngineConfiguration(numGPUBlocks: 8_000, seed: UInt64(i) &+ seed))
            c.slowdown = s
            return c
        }
        var rng = SeededGenerator(seed: seed)
        func tokens(_ n: Int) -> [UInt32] { (0..<n).map { _ in UInt32.random(in: 0..<46_656, using: &rng) } }
        let preamble = tokens(1500)
        struct Session { var history: [UInt32]; var turn = 0 }
        var state = (0..<sessions).map { _ in Session(history: preamble + tokens(200)) }
        // (time, session) of the next turn; sessions start staggered over the first 10 s.
        var ready: [(Double, Int)] = (0..<sessions).map { (Double($0) * 10 / Double(sessions), $0) }
        var busy: [Double?] = Array(repeating: nil, count: cores.count)
        var pending: [StepResult?] = Array(repeating: nil, count: cores.count)
        var inEngine: [Int: [EngineRequestID: (session: Int, id: String, answer: [UInt32])]] = [:]
        var figures = Figures()
        var snapshots = addresses.map { EndpointSnapshot(address: $0, maxNumSeqs: 256) }
        var lastScrape = -1.0
        var now = 0.0
        var next = 0

        func start(_ e: Int) {
            guard busy[e] == nil, cores[e].hasWork else { return }
            let s = cores[e].step(now: now)
            if s.outputs.isEmpty && s.duration == 0 { return }
            busy[e] = s.end
            pending[e] = s
        }

        while true {
            ready.sort { $0.0 < $1.0 }
            let arrival = ready.first?.0
            var stepper: Int?
            for e in cores.indices { if let b = busy[e], b <= (stepper.flatMap { busy[$0] } ?? .infinity) { stepper = e } }
            guard arrival != nil || stepper != nil else { break }
            if let e = stepper, let b = busy[e], b <= (arrival ?? .infinity) {
                now = b
                let s = pending[e]!
                busy[e] = nil
                pending[e] = nil
                for out in s.outputs {
                    if let t = out.token { inEngine[e]?[out.id]?.answer.append(t) }
                    guard let f = out.finished, let r = inEngine[e]?.removeValue(forKey: out.id) else { continue }
                    scheduler.requestFinished(requestID: r.id, outcome: RequestOutcome(
                        servedBy: addresses[e], result: .answered(status: 200), finishedAt: f.finishTime, timeToFirstByte: f.timeToFirstToken,
                        promptTokens: f.promptTokens, cachedTokens: f.cachedTokens, completionTokens: f.completionTokens))
                    figures.answered += 1
                    figures.ttfts.append(f.timeToFirstToken)
                    figures.prompt += f.promptTokens
                    figures.cached += f.cachedTokens
                    figures.e2e += f.endToEnd
                    state[r.session].history += r.answer + tokens(Int.random(in: 100...600, using: &rng))  // tool output
                    state[r.session].turn += 1
                    if state[r.session].turn < turns { ready.append((now + Double.random(in: 0.1...1.0, using: &rng), r.session)) }
                }
                start(e)
            } else {
                let (t, session) = ready.removeFirst()
                now = t
                if now - lastScrape >= 0.05 {
                    lastScrape = now
                    for i in cores.indices {
                        snapshots[i].waitingRequests = cores[i].numWaiting
                        snapshots[i].runningRequests = cores[i].numRunning
                        snapshots[i].kvCacheUsage = cores[i].pool.usage
                    }
                }
                let id = "s\(session)-\(next)"
                next += 1
                let history = state[session].history
                let request = InferenceRequest(requestID: id, model: "m", prompt: .text(text(history[...])), sessionKey: "s\(session)")
                let clock = ContinuousClock.now
                let primary = try scheduler.schedule(request, candidates: snapshots, now: now).primary
                let d = ContinuousClock.now - clock
                figures.decisions += 1
                figures.decisionSeconds += Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
                let e = addresses.firstIndex(of: primary)!
                let engineID = try cores[e].add(EngineRequest(promptTokens: history, maxTokens: Int.random(in: 50...300, using: &rng)), at: now)
                inEngine[e, default: [:]][engineID] = (session, id, [])
                start(e)
            }
        }
        return figures
    }

    static let policies: [(String, String)] = [
        ("predicted-latency", EndpointPickerConfig.predictedLatencyYAML),
        ("kvroute default", EndpointPickerConfig.kvrouteDefaultYAML),
        ("llm-d approx-prefix", EndpointPickerConfig.llmdDefaultYAML),
    ]

    @Test(arguments: [("homogeneous", [1.0, 1, 1, 1]), ("one engine at half speed", [1.0, 1, 1, 2])])
    func agenticSessions(_ pool: String, _ slowdowns: [Double]) throws {
        for (name, yaml) in Self.policies {
            let f = try Self.run(yaml, slowdowns: slowdowns, sessions: 128, turns: 8, seed: 11)
            print("agentic sessions, \(pool), \(name): \(f)")
            #expect(f.answered == 128 * 8)
        }
    }
}
