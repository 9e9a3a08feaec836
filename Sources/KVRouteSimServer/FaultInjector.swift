import KVRouteEngineSim
import Synchronization

/// Failure-injection settings of one simulated engine, changeable at run time through
/// `POST /admin/faults`.
public struct FaultSettings: Sendable, Hashable, Codable {
    /// Fraction of completion requests answered with `failStatus` instead of served.
    public var failRate: Double
    /// Status used by `failRate`.
    public var failStatus: Int
    /// Multiplies every engine step's duration (a slow engine).
    public var slowdown: Double
    /// Added before the first response byte of every completion request.
    public var extraLatencyMs: Double
    /// When false, `/health` answers 503 and completions fail with 503.
    public var healthy: Bool

    public init(failRate: Double = 0, failStatus: Int = 500, slowdown: Double = 1, extraLatencyMs: Double = 0, healthy: Bool = true) {
        self.failRate = failRate
        self.failStatus = failStatus
        self.slowdown = slowdown
        self.extraLatencyMs = extraLatencyMs
        self.healthy = healthy
    }

    enum CodingKeys: String, CodingKey {
        case failRate = "fail_rate", failStatus = "fail_status", slowdown
        case extraLatencyMs = "extra_latency_ms", healthy
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = FaultSettings()
        failRate = try c.decodeIfPresent(Double.self, forKey: .failRate) ?? d.failRate
        failStatus = try c.decodeIfPresent(Int.self, forKey: .failStatus) ?? d.failStatus
        slowdown = try c.decodeIfPresent(Double.self, forKey: .slowdown) ?? d.slowdown
        extraLatencyMs = try c.decodeIfPresent(Double.self, forKey: .extraLatencyMs) ?? d.extraLatencyMs
        healthy = try c.decodeIfPresent(Bool.self, forKey: .healthy) ?? d.healthy
    }

    func validate() throws(OpenAIError) {
        guard (0...1).contains(failRate) else { throw .badRequest("fail_rate must be in [0, 1]", param: "fail_rate") }
        guard (400..<600).contains(failStatus) else { throw .badRequest("fail_status must be a 4xx or 5xx status", param: "fail_status") }
        guard slowdown > 0, slowdown.isFinite else { throw .badRequest("slowdown must be positive", param: "slowdown") }
        guard extraLatencyMs >= 0, extraLatencyMs.isFinite else { throw .badRequest("extra_latency_ms must be non-negative", param: "extra_latency_ms") }
    }
}

/// Holds the current ``FaultSettings`` and draws the seeded failures.
final class FaultInjector: Sendable {
    private struct State {
        var settings: FaultSettings
        var rng: SplitMix64
    }
    private let state: Mutex<State>

    init(settings: FaultSettings, seed: UInt64) {
        state = Mutex(State(settings: settings, rng: SplitMix64(seed: seed ^ 0xD1B5_4A32_D192_ED03)))
    }

    var settings: FaultSettings {
        get { state.withLock { $0.settings } }
        set { state.withLock { $0.settings = newValue } }
    }

    /// The status to fail this request with, if any.
    func drawFailure() -> Int? {
        state.withLock { s in
            guard s.settings.failRate > 0 else { return nil }
            return s.rng.unit() < s.settings.failRate ? s.settings.failStatus : nil
        }
    }
}


extension FaultSettings {
    /// The same checks as the admin endpoint, for command-line values.
    public func validateForCLI() throws {
        do { try validate() } catch { throw error }
    }
}
