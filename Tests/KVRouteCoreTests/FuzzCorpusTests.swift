import Foundation
import KVRouteTestSupport
import Testing
@testable import KVRouteCore

/// What the core parses from outside: OpenAI request bodies (from any client, through the
/// gateway and the picker) and EndpointPickerConfig YAML. Every input gives a value or a
/// ``KVRouteError``; none traps or hangs.
@Suite("Fuzz corpus: OpenAI bodies and EndpointPickerConfig")
struct FuzzCorpusTests {
    static let openAIKeys = ["model", "messages", "prompt", "input", "instructions", "stream", "role", "content", "text", "type", "max_tokens", "n"]

    static let openAISeeds: [FuzzJSON] = [
        .object([("model", .string("m")), ("messages", .array([
            .object([("role", .string("system")), ("content", .string("You are terse."))]),
            .object([("role", .string("user")), ("content", .array([.object([("type", .string("text")), ("text", .string("hi ☕"))])]))]),
        ])), ("stream", .bool(true)), ("max_tokens", .number("4"))]),
        .object([("model", .string("m")), ("prompt", .string("Once upon")), ("max_tokens", .number("16"))]),
        .object([("model", .string("m")), ("prompt", .array([.number("1"), .number("2"), .number("3")]))]),
        .object([("model", .string("m")), ("prompt", .array([.string("a"), .string("b")]))]),
        .object([("model", .string("m")), ("input", .array([.object([("role", .string("user")), ("content", .string("x"))])])), ("instructions", .string("be brief"))]),
        .object([("model", .string("m")), ("input", .string("embed me"))]),
    ]

    static func checkOpenAI(_ body: [UInt8]) {
        for kind in [APIKind.chatCompletions, .completions, .responses, .embeddings] {
            do {
                let parsed = try OpenAIRequestParser.parse(body: body, apiKind: kind)
                #expect(!parsed.model.isEmpty)
            } catch is KVRouteError {
            } catch {
                Issue.record("\(kind): not a KVRouteError: \(error) for \(String(decoding: body.prefix(200), as: UTF8.self))")
            }
        }
    }

    @Test("OpenAI request bodies: mutated, damaged, random and deeply nested")
    func openAIBodies() {
        let ran = Fuzz.run("openai-request", cases: 3_000) { r in
            FuzzJSON.document(&r, seeds: Self.openAISeeds, keys: Self.openAIKeys)
        } check: { Self.checkOpenAI($0) }
        #expect(ran > 0)
    }

    @Test("OpenAI request bodies: 100k nested lists and objects are refused, not a stack overflow",
          arguments: ["[", "{\"content\":", "{\"model\":\"m\",\"messages\":[{\"content\":["])
    func deepNesting(open: String) {
        let body = Array((open + String(repeating: open.hasSuffix("[") ? "[" : open, count: 100_000)).utf8)
        #expect(throws: KVRouteError.self) { try OpenAIRequestParser.parse(body: body, apiKind: .chatCompletions) }
    }

    // MARK: EndpointPickerConfig

    static let configSeeds = [
        EndpointPickerConfig.kvrouteDefaultYAML, EndpointPickerConfig.llmdDefaultYAML, EndpointPickerConfig.leastLoadYAML,
        """
        kind: EndpointPickerConfig
        plugins:
        - type: by-label
          name: pool
          parameters:
            label: role
            validValues: [decode, both]
            validValuesMap: {a: x, b: 2}
            allowsNoLabel: true
        - type: by-label-selector
          parameters:
            matchLabels: {app: vllm, tier: 1}
        - type: healthy-filter
          parameters: {maxMetricsAge: 2.5}
        - type: load-aware-scorer
          parameters: {threshold: 64}
        - type: random-picker
          parameters: {maxNumOfEndpoints: 2}
        schedulingProfiles:
        - name: default
          plugins:
          - pluginRef: pool
          - pluginRef: by-label-selector
          - pluginRef: healthy-filter
          - pluginRef: load-aware-scorer
            weight: 2.5
          - pluginRef: random-picker
        """,
    ]

    static let yamlScalars = [
        "1e300", "-1e300", ".inf", "-.inf", ".nan", ".NaN", "~", "null", "[]", "{}", "-1", "0", "1", "0.5", "9223372036854775807", "9223372036854775808",
        "-9223372036854775809", "99999999999999999999999", "4611686018427387904", "0x7fffffffffffffff", "0o17", "1_000", "+1", "true", "no", "\"x\"",
        "''", "'a: b'", "!!float 1e999", "!!int 1e3", "!!binary aGk=", "!!str 1", "2001-12-14", "[1, [2, [3]]]", "{a: {b: c}}", "*undefined",
        "&a 1", "|\n  block", ">-\n  folded", "\"\\u0000\"", "\"\\xff\"", "@", "`", "%", "- - -", "? complex", "unknown-plugin-type", "max-score-pickr",
        "pd-profile-handler", "precise-prefix-cache-scorer",
    ]

    /// YAML text from a seed with lines removed, duplicated, swapped, re-indented, or
    /// scalars replaced; or a random document; or nesting and aliases.
    static func yaml(_ r: inout FuzzRandom) -> String {
        switch r.below(25) {
        case 0: return String(decoding: FuzzText.randomBytes(&r), as: UTF8.self)
        case 1: return FuzzJSON.random(&r, depth: 4).text
        case 2: return "plugins: " + String(decoding: FuzzText.deepNesting(&r), as: UTF8.self)
        case 3:
            // Block sequences nested on one line, and by indentation.
            if r.chance(0.5) { return "plugins:\n" + String(repeating: "- ", count: r.pick([1_000, 50_000])) + "x" }
            return "plugins:\n" + (0..<r.pick([100, 1_500])).map { String(repeating: " ", count: $0) + "- " }.joined(separator: "\n") + "x"
        case 4:
            // Aliases that expand exponentially ("billion laughs").
            var lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
            for i in 1..<(2 + r.below(12)) { lines.append("a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]") }
            lines.append("plugins: [{type: max-score-picker, parameters: {x: *a\(lines.count - 1)}}]")
            return lines.joined(separator: "\n")
        case 5:
            let doc: FuzzJSON = .object([("kind", .string("EndpointPickerConfig")), ("plugins", .array([
                .object([("type", .string(r.pick(["max-score-picker", "prefix-cache-scorer", "saturation-scorer", "by-label", "healthy-filter", "load-aware-scorer"]))),
                         ("parameters", .object((0..<r.below(4)).map { _ in
                             (r.pick(["maxNumOfEndpoints", "blockSize", "hashBlockSize", "maxPrefixBlocksToMatch", "lruCapacityPerServer", "threshold", "kvThreshold", "label", "validValues", "validValuesMap", "matchLabels", "maxMetricsAge", "relative", "mode"]),
                              FuzzJSON.random(&r, depth: 2))
                         }))]),
                .object([("type", .string("max-score-picker")), ("name", .string("p"))]),
            ]))])
            return doc.mutated(&r, keys: ["kind", "plugins", "schedulingProfiles", "type", "name", "parameters", "pluginRef", "weight"]).text
        default: break
        }
        var lines = r.pick(configSeeds).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for _ in 0..<(1 + r.below(4)) where !lines.isEmpty {
            let i = r.below(lines.count)
            switch r.below(8) {
            case 0: lines.remove(at: i)
            case 1: lines.insert(lines[i], at: i)
            case 2: lines.swapAt(i, r.below(lines.count))
            case 3: lines[i] = String(repeating: " ", count: r.below(3)) + lines[i].drop { $0 == " " && r.chance(0.5) }
            case 4: lines[i] = "\t" + lines[i]
            case 5: lines.insert(lines[i].prefix { $0 == " " } + r.pick(["weight", "pluginRef", "type", "name", "parameters", "threshold", "bogus", "- type"]) + ": " + r.pick(yamlScalars), at: i)
            default:
                if let colon = lines[i].range(of: ": ") {
                    lines[i] = String(lines[i][..<colon.upperBound]) + r.pick(yamlScalars)
                } else {
                    lines[i] += " " + r.pick(yamlScalars)
                }
            }
        }
        let text = lines.joined(separator: "\n")
        return r.chance(0.1) ? String(decoding: FuzzText.damage(Array(text.utf8), &r), as: UTF8.self) : text
    }

    static func checkConfig(_ yaml: String) {
        do {
            let config = try EndpointPickerConfig.load(yaml: yaml)
            #expect(!config.profiles.isEmpty)
            _ = config.primaryProfile
        } catch is KVRouteError {
        } catch {
            Issue.record("not a KVRouteError: \(error)")
        }
    }

    @Test("EndpointPickerConfig: mutated configs, wrong types, unknown plugins, huge numbers, random YAML")
    func pickerConfigs() {
        let ran = Fuzz.run("endpoint-picker-config", cases: 2_000, generate: Self.yaml, bytes: { Array($0.utf8) }, check: Self.checkConfig)
        #expect(ran > 0)
    }
}

/// Inputs the fuzz corpus found, kept as named cases.
@Suite("Fuzz findings: EndpointPickerConfig")
struct PickerConfigFindingsTests {
    @Test("integer parameters beyond Int, infinite or NaN are refused, not a trap", arguments: [
        "maxNumOfEndpoints: 1e300", "maxNumOfEndpoints: .inf", "maxNumOfEndpoints: -.inf", "maxNumOfEndpoints: .nan",
        "maxNumOfEndpoints: 9223372036854775807",
    ])
    func hugeIntegers(parameter: String) {
        #expect(throws: KVRouteError.self) {
            try EndpointPickerConfig.load(yaml: "plugins:\n- type: max-score-picker\n  parameters:\n    \(parameter)\n")
        }
    }

    @Test("a block size whose character count overflows is refused, not a trap")
    func blockSizeOverflow() {
        #expect(throws: KVRouteError.self) {
            try EndpointPickerConfig.load(yaml: "plugins:\n- type: prefix-cache-scorer\n  parameters: {blockSize: 4611686018427387904}\n- type: max-score-picker\n")
        }
    }

    @Test("a huge number where a string belongs is named in the error, not a trap")
    func hugeNumberInMessage() {
        #expect(throws: KVRouteError.self) {
            try EndpointPickerConfig.load(yaml: "plugins:\n- type: by-label\n  parameters: {label: 1e300}\n- type: max-score-picker\n")
        }
        #expect(throws: KVRouteError.self) {
            try EndpointPickerConfig.load(yaml: "plugins:\n- type: by-label-selector\n  parameters: {matchLabels: {a: 1e300}, bogus: 1}\n- type: max-score-picker\n")
        }
    }

    @Test("infinite weights and thresholds are refused")
    func infiniteWeights() {
        #expect(throws: KVRouteError.self) {
            try EndpointPickerConfig.load(yaml: "plugins:\n- type: queue-scorer\n- type: max-score-picker\nschedulingProfiles:\n- name: default\n  plugins:\n  - pluginRef: queue-scorer\n    weight: .inf\n  - pluginRef: max-score-picker\n")
        }
        #expect(throws: KVRouteError.self) {
            try EndpointPickerConfig.load(yaml: "plugins:\n- type: healthy-filter\n  parameters: {maxMetricsAge: .inf}\n- type: max-score-picker\n")
        }
    }

    @Test("nested aliases (\"billion laughs\") are refused before they expand")
    func aliasBomb() {
        var lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        for i in 1..<10 { lines.append("a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]") }
        lines.append("plugins: [{type: max-score-picker}]")
        #expect(throws: KVRouteError.self) { try EndpointPickerConfig.load(yaml: lines.joined(separator: "\n")) }
    }

    @Test("a megabyte-long unknown plugin type is refused without a quadratic suggestion")
    func longUnknownType() {
        #expect(throws: KVRouteError.self) {
            try EndpointPickerConfig.load(yaml: "plugins:\n- type: " + String(repeating: "x", count: 1 << 20) + "\n")
        }
    }
}
