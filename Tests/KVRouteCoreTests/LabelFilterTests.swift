import Testing
@testable import KVRouteCore

/// The label filters, built from their configured type and parameters as a configuration
/// file would, over endpoints with and without role labels.
@Suite("Label filters")
struct LabelFilterTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var type: String
        var parameters: [String: String]
        var kept: [Int]
        var testDescription: String { "\(type) \(parameters)" }
    }

    /// Endpoint 1: decode, 2: prefill, 3: both, 4: no role; zone labels on 1 and 2.
    static let candidates = [
        snap(1, labels: [LabelFilter.roleLabel: "decode", "zone": "a"]),
        snap(2, labels: [LabelFilter.roleLabel: "prefill", "zone": "b"]),
        snap(3, labels: [LabelFilter.roleLabel: "both"]),
        snap(4),
    ]

    static let cases: [Case] = [
        Case(type: "decode-filter", parameters: [:], kept: [1, 3, 4]),
        Case(type: "prefill-filter", parameters: [:], kept: [2]),
        Case(type: "by-label", parameters: ["label": "zone"], kept: []),
        Case(type: "by-label-selector", parameters: ["zone": "b"], kept: [2]),
    ]

    @Test("each filter keeps what its labels allow", arguments: cases)
    func keeps(_ c: Case) throws {
        var values: [String: Any] = [:]
        if c.type == "by-label-selector" { values["matchLabels"] = c.parameters } else { for (k, v) in c.parameters { values[k] = v } }
        guard case .filter(let f) = try PluginRegistry.make(type: c.type, name: c.type, parameters: values) else {
            Issue.record("\(c.type) is not a filter")
            return
        }
        var ctx = context()
        let (kept, _) = f.filter(Self.candidates, context: &ctx)
        #expect(kept.map(\.address) == c.kept.map(ep))
    }

    @Test("by-label with valid values and allowsNoLabel")
    func byLabelValues() throws {
        let made = try PluginRegistry.make(type: "by-label", name: "z", parameters: ["label": "zone", "validValues": ["a"], "allowsNoLabel": true])
        guard case .filter(let f) = made else { Issue.record("not a filter"); return }
        var ctx = context()
        #expect(f.filter(Self.candidates, context: &ctx).kept.map(\.address) == [ep(1), ep(3), ep(4)])
    }

    @Test("a missing required parameter is named")
    func required() {
        #expect(throws: KVRouteError.self) { try PluginRegistry.make(type: "by-label", name: "z", parameters: [:]) }
        #expect(throws: KVRouteError.self) { try PluginRegistry.make(type: "by-label-selector", name: "z", parameters: [:]) }
    }
}

/// What the filters and the max-score picker cost per decision: nothing copied when nothing
/// is dropped, and the picker's order the same as ranking the shuffled snapshots.
@Suite("Filters and picker without copies")
struct FilterPickerCopyTests {
    static let many = (0..<64).map { snap($0, labels: [LabelFilter.roleLabel: "decode"]) }

    @Test("a filter that drops nothing hands back the candidates' own storage", arguments: ["decode-filter", "healthy-filter"])
    func sharedStorage(_ type: String) throws {
        guard case .filter(let f) = try PluginRegistry.make(type: type, name: type, parameters: [:]) else {
            Issue.record("\(type) is not a filter")
            return
        }
        var ctx = context()
        let (kept, _) = f.filter(Self.many, context: &ctx)
        let same = kept.withUnsafeBufferPointer { k in Self.many.withUnsafeBufferPointer { $0.baseAddress == k.baseAddress } }
        #expect(same)
        #expect(kept.count == 64)
    }

    @Test("keeping: order kept, first and last dropped")
    func keeping() {
        let dropped: Set = [ep(0), ep(10), ep(63)]
        let kept = Self.many.keeping { !dropped.contains($0.address) }
        #expect(kept.count == 61)
        #expect(kept.first?.address == ep(1) && kept.last?.address == ep(62))
        #expect(!kept.contains { $0.address == ep(10) })
    }

    @Test("max-score-picker ranks as a stable sort of the shuffled candidates would", arguments: [1, 3, 64])
    func pickerOrder(_ count: Int) {
        var scoreRNG = SeededGenerator(seed: 42)
        for seed in 0..<50 as Range<UInt64> {
            // Few distinct scores, so ties are common.
            let scored = Self.many.map { (endpoint: $0, score: Double(scoreRNG.next() % 4)) }
            var a = SeededGenerator(seed: seed)
            var b = SeededGenerator(seed: seed)
            var ctx = context()
            let picked = MaxScorePicker(name: "p", maxNumOfEndpoints: count).pick(scored, context: &ctx, ledger: RoutingLedger(), using: &a)
            var shuffled = scored
            shuffled.shuffle(using: &b)
            let reference = shuffled.enumerated().sorted { x, y in
                x.element.score != y.element.score ? x.element.score > y.element.score : x.offset < y.offset
            }.prefix(count).map(\.element.endpoint.address)
            #expect(picked == reference)
        }
    }
}
