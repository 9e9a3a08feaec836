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
/// endpoints filtered out, with the reason. The decision keeps only the numbers (one flat
/// array of raw scores, the totals) and the profile's scorer list; ``candidates`` builds the
/// per-endpoint breakdowns when someone reads it.
public struct DecisionExplanation: Sendable {
    public var profile: String
    public var filteredOut: [(endpoint: EndpointAddress, reason: String)]
    /// Prefix blocks the chosen endpoint is expected to hold, of `totalPrefixBlocks`.
    public var matchedPrefixBlocks: Int
    public var totalPrefixBlocks: Int

    /// The scorers' names, types and weights, in the profile's order.
    let scorers: [(plugin: String, type: String, weight: Double)]
    let endpoints: [EndpointAddress]
    /// Raw score of candidate i by scorer j at `i * scorers.count + j`.
    let raw: [Double]
    let totals: [Double]

    public init(profile: String, candidates: [ScoreBreakdown], filteredOut: [(endpoint: EndpointAddress, reason: String)],
                matchedPrefixBlocks: Int, totalPrefixBlocks: Int) {
        let first = candidates.first?.scores ?? []
        self.init(
            profile: profile, scorers: first.map { ($0.plugin, $0.type, $0.weight) }, endpoints: candidates.map(\.endpoint),
            raw: candidates.flatMap { c in first.indices.map { $0 < c.scores.count ? c.scores[$0].raw : 0 } }, totals: candidates.map(\.total),
            filteredOut: filteredOut, matchedPrefixBlocks: matchedPrefixBlocks, totalPrefixBlocks: totalPrefixBlocks)
    }

    init(profile: String, scorers: [(plugin: String, type: String, weight: Double)], endpoints: [EndpointAddress], raw: [Double],
         totals: [Double], filteredOut: [(endpoint: EndpointAddress, reason: String)], matchedPrefixBlocks: Int, totalPrefixBlocks: Int) {
        self.profile = profile
        self.scorers = scorers
        self.endpoints = endpoints
        self.raw = raw
        self.totals = totals
        self.filteredOut = filteredOut
        self.matchedPrefixBlocks = matchedPrefixBlocks
        self.totalPrefixBlocks = totalPrefixBlocks
    }

    /// Every candidate's scores, in the candidates' order.
    public var candidates: [ScoreBreakdown] {
        let n = scorers.count
        return endpoints.indices.map { i in
            ScoreBreakdown(
                endpoint: endpoints[i],
                scores: scorers.indices.map { j in .init(plugin: scorers[j].plugin, type: scorers[j].type, raw: raw[i * n + j], weight: scorers[j].weight) },
                total: totals[i])
        }
    }

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
