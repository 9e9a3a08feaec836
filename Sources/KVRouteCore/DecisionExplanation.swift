/// One endpoint's scores in a decision.
public struct ScoreBreakdown: Sendable {
    public struct Entry: Sendable {
        public var plugin: String
        public var type: String
        public var raw: Double
        public var weight: Double
    }
    public var endpoint: EndpointAddress
    public var scores: [Entry]
    public var total: Double
}

/// Why a decision came out as it did: every candidate's per-scorer scores and the
/// endpoints filtered out, with the reason.
public struct DecisionExplanation: Sendable {
    public var profile: String
    public var candidates: [ScoreBreakdown]
    public var filteredOut: [(endpoint: EndpointAddress, reason: String)]
    /// Prefix blocks the chosen endpoint is expected to hold, of `totalPrefixBlocks`.
    public var matchedPrefixBlocks: Int
    public var totalPrefixBlocks: Int

    /// A compact, ASCII, one-line rendering for an HTTP response header:
    /// `profile=default; blocks=12/40; 10.0.0.1:8000=2.91[prefix-cache-scorer:0.30x3 …]; …`
    public func headerValue() -> String {
        var parts = ["profile=\(profile)", "prefix_blocks=\(matchedPrefixBlocks)/\(totalPrefixBlocks)"]
        for c in candidates.sorted(by: { $0.total > $1.total }) {
            let s = c.scores.map { "\($0.plugin):\(Self.fmt($0.raw))x\(Self.fmt($0.weight))" }.joined(separator: " ")
            parts.append("\(c.endpoint)=\(Self.fmt(c.total))[\(s)]")
        }
        for f in filteredOut { parts.append("\(f.endpoint)=filtered(\(f.reason.filter { $0.isASCII && $0 != ";" }))") }
        return parts.joined(separator: "; ")
    }

    static func fmt(_ d: Double) -> String {
        let r = (d * 1000).rounded() / 1000
        return r == r.rounded() ? String(Int(r)) : String(r)
    }
}

/// The decision for one request.
public struct SchedulingResult: Sendable {
    public var primary: EndpointAddress
    public var fallbacks: [EndpointAddress]
    public var explanation: DecisionExplanation
    /// Why the primary profile did not decide, when its handler's fallback did (`picker-error: …`).
    public var fallbackReason: String?
    /// The profile that decided.
    public var profile: String { explanation.profile }
    /// `ip:port,ip:port…` for `x-gateway-destination-endpoint`.
    public var destinationHeaderValue: String {
        ([primary] + fallbacks).map(\.description).joined(separator: ",")
    }
}
