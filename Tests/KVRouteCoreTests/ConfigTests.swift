import Testing
@testable import KVRouteCore

@Suite("EndpointPickerConfig")
struct ConfigTests {
    /// The reference llm-d picker configuration: decode filter, prefix scorer weight 90, max-score picker.
    static let seedConfig = """
    apiVersion: inference.networking.x-k8s.io/v1alpha1
    kind: EndpointPickerConfig
    plugins:
    - type: single-profile-handler
    - type: decode-filter
    - type: prefix-cache-scorer
      parameters:
        hashBlockSize: 64
        maxPrefixBlocksToMatch: 256
        lruCapacityPerServer: 31250
    - type: max-score-picker
    schedulingProfiles:
    - name: default
      plugins:
      - pluginRef: decode-filter
      - pluginRef: prefix-cache-scorer
        weight: 90
      - pluginRef: max-score-picker
    """

    /// llm-d's scheduler with named plugins and the load-aware scorer.
    static let namedPlugins = """
    apiVersion: inference.networking.x-k8s.io/v1alpha1
    kind: EndpointPickerConfig
    featureGates: []
    plugins:
    - name: prefix
      type: prefix-cache-scorer
      parameters:
        mode: estimate
        blockSize: 64
    - name: load
      type: load-aware-scorer
      parameters:
        threshold: 100
    - type: active-request-scorer
      parameters:
        requestTimeout: "2m"
    - type: session-affinity-scorer
    - type: weighted-random-picker
      parameters:
        maxNumOfEndpoints: 2
    schedulingProfiles:
    - name: default
      plugins:
      - pluginRef: prefix
        weight: 2
      - pluginRef: load
        weight: 1.5
      - pluginRef: active-request-scorer
      - pluginRef: session-affinity-scorer
      - pluginRef: weighted-random-picker
    """

    @Test("the reference llm-d config, llm-d's default, kvroute's default and named plugins load unchanged",
          arguments: [seedConfig, EndpointPickerConfig.llmdDefaultYAML, EndpointPickerConfig.kvrouteDefaultYAML, namedPlugins])
    func loads(_ yaml: String) throws {
        let c = try EndpointPickerConfig.load(yaml: yaml)
        #expect(!c.primaryProfile.scorers.isEmpty)
    }

    @Test("weights and types come through")
    func weights() throws {
        let seed = try EndpointPickerConfig.load(yaml: Self.seedConfig).primaryProfile
        #expect(seed.filters.map(\.type) == ["decode-filter"])
        #expect(seed.scorers.map(\.weight) == [90])
        #expect(seed.picker.type == "max-score-picker")
        let llmd = EndpointPickerConfig.llmdDefault.primaryProfile
        #expect(Dictionary(uniqueKeysWithValues: llmd.scorers.map { ($0.scorer.type, $0.weight) }) ==
                ["queue-scorer": 2, "kv-cache-utilization-scorer": 2, "prefix-cache-scorer": 3])
        let named = try EndpointPickerConfig.load(yaml: Self.namedPlugins).primaryProfile
        #expect(named.scorers.map(\.scorer.name) == ["prefix", "load", "active-request-scorer", "session-affinity-scorer"])
        #expect(named.scorers[1].weight == 1.5)
    }

    struct Broken: Sendable, CustomTestStringConvertible {
        var name: String
        var yaml: String
        var mentions: [String]
        var testDescription: String { name }
    }

    static let broken: [Broken] = [
        Broken(name: "typo'd plugin type", yaml: seedConfig.replacingOccurrences(of: "type: prefix-cache-scorer", with: "type: prefix-cache-scorr"),
               mentions: ["prefix-cache-scorr", "did you mean \"prefix-cache-scorer\""]),
        Broken(name: "wrongly typed parameter", yaml: seedConfig.replacingOccurrences(of: "maxPrefixBlocksToMatch: 256", with: "maxPrefixBlocksToMatch: lots"),
               mentions: ["prefix-cache-scorer", "maxPrefixBlocksToMatch"]),
        Broken(name: "negative parameter", yaml: seedConfig.replacingOccurrences(of: "lruCapacityPerServer: 31250", with: "lruCapacityPerServer: -1"),
               mentions: ["lruCapacityPerServer"]),
        Broken(name: "unknown parameter", yaml: seedConfig.replacingOccurrences(of: "hashBlockSize: 64", with: "hashBlokSize: 64"),
               mentions: ["hashBlokSize"]),
        Broken(name: "dangling pluginRef", yaml: seedConfig.replacingOccurrences(of: "- pluginRef: decode-filter", with: "- pluginRef: decode-filtre"),
               mentions: ["decode-filtre"]),
        Broken(name: "profile without a picker", yaml: seedConfig.replacingOccurrences(of: "- pluginRef: max-score-picker", with: ""),
               mentions: ["no picker"]),
        Broken(name: "unsupported llm-d plugin", yaml: seedConfig.replacingOccurrences(of: "type: single-profile-handler", with: "type: pd-profile-handler"),
               mentions: ["pd-profile-handler", "not supported"]),
        Broken(name: "not YAML", yaml: "plugins: [", mentions: ["YAML"]),
        Broken(name: "wrong kind", yaml: "kind: Deployment\nplugins: []", mentions: ["Deployment"]),
    ]

    @Test("a broken config fails with a message naming what is wrong", arguments: broken)
    func rejects(_ b: Broken) {
        do {
            _ = try EndpointPickerConfig.load(yaml: b.yaml)
            Issue.record("\(b.name) loaded")
        } catch let e as KVRouteError {
            for m in b.mentions { #expect(e.message.contains(m), "\(e.message)") }
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}
