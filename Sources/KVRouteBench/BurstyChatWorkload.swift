import Foundation
import KVRouteCore
import KVRouteEngineSim

/// Chat traffic that comes in bursts (a launch, a batch job's fan-out, the top of the
/// hour): requests of several applications, each with its own system prompt (Zipf
/// popularity), and a user message; arrivals are Poisson with a rate that switches every
/// `period` seconds between a burst (`burstShare` of the period at `burstFactor` × the mean
/// rate) and a lull that keeps the long-run mean at `qps`.
public struct BurstyChatWorkload: Workload {
    public var requests: Int
    /// Long-run mean requests per second.
    public var qps: Double
    public var applications: Int = 16
    public var applicationSkew: Double = 1.0
    public var systemTokens: Int = 1_500
    public var userTokens: Int = 200
    public var outputTokens: Int = 200
    public var period: Double = 30
    public var burstShare: Double = 0.2
    public var burstFactor: Double = 3
    public var seed: UInt64

    public init(requests: Int = 600, qps: Double = 10, seed: UInt64 = 1) {
        self.requests = requests
        self.qps = qps
        self.seed = seed
    }

    public var name: String { "bursty" }
    public var concurrency: Int? { nil }
    public var settings: [String: String] {
        ["requests": "\(requests)", "mean_qps": String(format: "%.2f", qps), "applications": "\(applications)",
         "application_zipf_s": "\(applicationSkew)", "system_tokens": "\(systemTokens)", "user_tokens": "\(userTokens)",
         "output_tokens": "\(outputTokens)", "burst": "\(Int(burstShare * 100))% of every \(Int(period)) s at \(burstFactor)x the mean rate"]
    }

    /// The arrival rate at time t: bursts first in every period.
    public func rate(at t: Double) -> Double {
        let lull = qps * (1 - burstShare * burstFactor) / (1 - burstShare)
        return t.truncatingRemainder(dividingBy: period) < burstShare * period ? qps * burstFactor : lull
    }

    /// The rate in force at `t` and when its burst or lull ends.
    func segment(at t: Double) -> (rate: Double, end: Double) {
        let inBurst = t.truncatingRemainder(dividingBy: period) < burstShare * period
        return (rate(at: t), (t / period).rounded(.down) * period + (inBurst ? burstShare * period : period))
    }

    /// Poisson arrivals of the piecewise-constant rate (``PoissonArrivals``).
    public func arrivals() -> [Double] {
        var d = Draw(seed: seed)
        var arrivals = PoissonArrivals(segment: segment(at:))
        return (0..<requests).map { _ in arrivals.next(using: &d) }
    }

    public func initialRequests() -> [BenchRequest] {
        let systems = (0..<applications).map { SyntheticText.make(tokens: systemTokens, seed: SplitMix64.mix(seed, 0xA99 + UInt64($0))) }
        var d = Draw(seed: SplitMix64.mix(seed, 0xB0B))
        return arrivals().enumerated().map { i, t in
            let app = d.zipf(applications, s: applicationSkew)
            let user = SyntheticText.make(tokens: userTokens, seed: SplitMix64.mix(seed, 0x05E + UInt64(i)))
            let (prompt, tokens) = PromptBuilder().chat([ChatMessage(role: "system", content: systems[app]), ChatMessage(role: "user", content: user)])
            return BenchRequest(id: i, arrival: t, session: nil, client: i, round: 0, prompt: prompt, tokens: tokens, maxTokens: outputTokens, apiKind: .chatCompletions)
        }
    }
}
