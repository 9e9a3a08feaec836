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
