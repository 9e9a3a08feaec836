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
    /// Fraction of completions that send their response headers, then stall for `stallMs`
    /// before the body (a hung engine).
    public var stallRate: Double
    /// How long a stalled completion waits after its headers; 0 = until the engine shuts down.
    public var stallMs: Double
    /// Fraction of completions answered 200 with a body that is not JSON (or SSE events that
    /// are not JSON).
    public var invalidJSONRate: Double
    /// Fraction of completions answered 200 with a `Content-Length` larger than the bytes
    /// sent, the connection then closed.
    public var truncateRate: Double
    /// Fraction of completions whose connection is closed right after the request is read,
    /// without a byte of answer.
    public var dropRate: Double
    /// What `/metrics` answers: the real samples, or samples spoiled this way.
    public var garbageMetrics: GarbageMetrics

    /// Ways `/metrics` can be spoiled. `mixed` takes a different one on every scrape.
    public enum GarbageMetrics: String, Sendable, Hashable, Codable, CaseIterable {
        case off, nan, inf, negative, huge, unparsable, mixed
    }

    public init(
        failRate: Double = 0, failStatus: Int = 500, slowdown: Double = 1, extraLatencyMs: Double = 0, healthy: Bool = true,
        stallRate: Double = 0, stallMs: Double = 0, invalidJSONRate: Double = 0, truncateRate: Double = 0, dropRate: Double = 0,
        garbageMetrics: GarbageMetrics = .off
    ) {
        self.failRate = failRate
        self.failStatus = failStatus
        self.slowdown = slowdown
        self.extraLatencyMs = extraLatencyMs
        self.healthy = healthy
        self.stallRate = stallRate
        self.stallMs = stallMs
        self.invalidJSONRate = invalidJSONRate
        self.truncateRate = truncateRate
        self.dropRate = dropRate
        self.garbageMetrics = garbageMetrics
    }

    enum CodingKeys: String, CodingKey {
        case failRate = "fail_rate", failStatus = "fail_status", slowdown
        case extraLatencyMs = "extra_latency_ms", healthy
        case stallRate = "stall_rate", stallMs = "stall_ms", invalidJSONRate = "invalid_json_rate"
        case truncateRate = "truncate_rate", dropRate = "drop_rate", garbageMetrics = "garbage_metrics"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = FaultSettings()
        failRate = try c.decodeIfPresent(Double.self, forKey: .failRate) ?? d.failRate
        failStatus = try c.decodeIfPresent(Int.self, forKey: .failStatus) ?? d.failStatus
        slowdown = try c.decodeIfPresent(Double.self, forKey: .slowdown) ?? d.slowdown
        extraLatencyMs = try c.decodeIfPresent(Double.self, forKey: .extraLatencyMs) ?? d.extraLatencyMs
        healthy = try c.decodeIfPresent(Bool.self, forKey: .healthy) ?? d.healthy
        stallRate = try c.decodeIfPresent(Double.self, forKey: .stallRate) ?? d.stallRate
        stallMs = try c.decodeIfPresent(Double.self, forKey: .stallMs) ?? d.stallMs
        invalidJSONRate = try c.decodeIfPresent(Double.self, forKey: .invalidJSONRate) ?? d.invalidJSONRate
        truncateRate = try c.decodeIfPresent(Double.self, forKey: .truncateRate) ?? d.truncateRate
        dropRate = try c.decodeIfPresent(Double.self, forKey: .dropRate) ?? d.dropRate
        garbageMetrics = try c.decodeIfPresent(GarbageMetrics.self, forKey: .garbageMetrics) ?? d.garbageMetrics
    }

    /// Longest injected delay: one day, in milliseconds.
    static let maxDelayMs = 86_400_000.0

    func validate() throws(OpenAIError) {
        for (name, rate) in [("fail_rate", failRate), ("stall_rate", stallRate), ("invalid_json_rate", invalidJSONRate),
                             ("truncate_rate", truncateRate), ("drop_rate", dropRate)] {
            guard (0...1).contains(rate) else { throw .badRequest("\(name) must be in [0, 1]", param: name) }
        }
        guard (400..<600).contains(failStatus) else { throw .badRequest("fail_status must be a 4xx or 5xx status", param: "fail_status") }
        guard slowdown > 0, slowdown <= EngineRunner.maxSlowdown else {
            throw .badRequest("slowdown must be positive and at most \(EngineRunner.maxSlowdown)", param: "slowdown")
        }
        // Sleeps are Durations: a day bounds them far inside what a Duration holds.
        guard (0...Self.maxDelayMs).contains(extraLatencyMs) else { throw .badRequest("extra_latency_ms must be in [0, \(Self.maxDelayMs)]", param: "extra_latency_ms") }
        guard (0...Self.maxDelayMs).contains(stallMs) else { throw .badRequest("stall_ms must be in [0, \(Self.maxDelayMs)] (0 = until the engine stops)", param: "stall_ms") }
    }
}

/// What a completion request gets instead of being served normally.
enum CompletionFault: Sendable, Equatable {
    /// Answer with this error status.
    case fail(Int)
    /// Close the connection without answering.
    case drop
    /// Answer 200 with a body that is not JSON.
    case invalidJSON
    /// Answer 200 announcing more bytes than are sent, then close.
    case truncate
    /// Serve normally, but stall after the headers for this long (nil: until shutdown).
    case stall(Duration?)
}

/// Holds the current ``FaultSettings`` and draws the seeded failures.
final class FaultInjector: Sendable {
    private struct State {
        var settings: FaultSettings
        var rng: SplitMix64
        var scrapes: Int = 0
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

    /// At most one fault for this completion, each drawn at its own rate, in the order
    /// fail, drop, invalid JSON, truncate, stall.
    func drawFault() -> CompletionFault? {
        state.withLock { s in
            let f = s.settings
            func hit(_ rate: Double) -> Bool { rate > 0 && s.rng.unit() < rate }
            if hit(f.failRate) { return .fail(f.failStatus) }
            if hit(f.dropRate) { return .drop }
            if hit(f.invalidJSONRate) { return .invalidJSON }
            if hit(f.truncateRate) { return .truncate }
            if hit(f.stallRate) { return .stall(f.stallMs > 0 ? .milliseconds(f.stallMs) : nil) }
            return nil
        }
    }

    /// The `/metrics` text to answer: the engine's own, or spoiled as configured.
    func metricsText(_ real: [UInt8]) -> [UInt8] {
        let mode: FaultSettings.GarbageMetrics = state.withLock { s in
            guard s.settings.garbageMetrics == .mixed else { return s.settings.garbageMetrics }
            s.scrapes &+= 1
            let spoiled = FaultSettings.GarbageMetrics.allCases.filter { $0 != .off && $0 != .mixed }
            return spoiled[s.scrapes % spoiled.count]
        }
        return mode == .off ? real : Array(Self.spoil(String(decoding: real, as: UTF8.self), mode).utf8)
    }

    /// Replaces the value of every sample line (comments kept), or for `unparsable` mangles
    /// the lines themselves, the way a broken exporter or a proxy in the way might.
    static func spoil(_ text: String, _ mode: FaultSettings.GarbageMetrics) -> String {
        var out: [String] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            guard !line.isEmpty, !line.hasPrefix("#"), let space = line.lastIndex(of: " ") else {
                out.append(String(line))
                continue
            }
            let series = line[..<space]
            switch mode {
            case .nan: out.append("\(series) NaN")
            case .inf: out.append("\(series) \(i % 2 == 0 ? "+Inf" : "-Inf")")
            case .negative: out.append("\(series) -\(Double(i % 7 + 1) * 1e6)")
            case .huge: out.append("\(series) \(["1.7976931348623157e308", "1e309", "18446744073709551616", "9223372036854775808", "1e400"][i % 5])")
            case .unparsable:
                switch i % 6 {
                case 0: out.append("\(series) twelve")
                case 1: out.append(String(series))
                case 2: out.append("\(series.prefix(series.count / 2))")
                case 3: out.append("\(series) 1 2 3 garbage {\"")
                case 4: out.append(String(repeating: "{", count: 64) + " \u{FFFD}\u{0}")
                default: out.append("\(series) 0x1p-3e")
                }
            case .off, .mixed: out.append(String(line))
            }
        }
        return out.joined(separator: "\n")
    }
}


extension FaultSettings {
    /// The same checks as the admin endpoint, for command-line values.
    public func validateForCLI() throws {
        do { try validate() } catch { throw error }
    }
}
