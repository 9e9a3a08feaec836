/// The configurations kvroute ships, by name: every routing rule the gateway, the picker, the
/// bench and the demo offer is one of these (or a file of the same format).
extension EndpointPickerConfig {
    /// kvroute's own profile, tuned with `kvroute bench` on shared-prefix, multi-turn and the
    /// Mooncake trace. Prefix affinity (weight 3, over the first 256 blocks of 64 characters,
    /// as llm-d: a long shared head counts fully instead of being diluted by a long unique
    /// tail) is balanced against saturation (weight 3: the router's in-flight requests plus
    /// the waiting queue against 8, or KV usage above 50 %): a prefix match wins while its
    /// endpoint has headroom, and a hot prefix spreads once that endpoint fills up. Prompts with no match go where the router has the fewest requests in
    /// flight (relative, weight 1) and the shortest queue (1); KV usage (1) breaks ties.
    /// Session affinity (3.5 = in flight 1 + queue 1 + half of saturation's 3, see
    /// ``SessionAffinityScorer/balancedWeight(in:)``) keeps a conversation on its endpoint
    /// against small load differences, a stale load view and a shared template block, never
    /// against saturation.
    public static let kvrouteDefaultYAML = """
    \(preamble)
    plugins:
    - type: decode-filter
    - type: prefix-cache-scorer
      parameters:
        blockSize: 16
        maxPrefixBlocksToMatch: 256
        lruCapacityPerServer: 31250
    - type: saturation-scorer
      parameters:
        threshold: 8
        kvThreshold: 0.5
    - type: active-request-scorer
    - type: queue-scorer
    - type: kv-cache-utilization-scorer
    - type: session-affinity-scorer
    - type: max-score-picker
      parameters:
        maxNumOfEndpoints: 1
    - type: single-profile-handler
    schedulingProfiles:
    - name: default
      plugins:
      - pluginRef: decode-filter
      - pluginRef: prefix-cache-scorer
        weight: 3
      - pluginRef: saturation-scorer
        weight: 3
      - pluginRef: active-request-scorer
        weight: 1
      - pluginRef: queue-scorer
        weight: 1
      - pluginRef: kv-cache-utilization-scorer
        weight: 1
      - pluginRef: session-affinity-scorer
        weight: 3.5
      - pluginRef: max-score-picker
    """

    /// llm-d's default: queue 2, KV cache 2, prefix 3, max-score picker.
    public static let llmdDefaultYAML = """
    \(preamble)
    plugins:
    - type: prefix-cache-scorer
      parameters:
        blockSize: 16
        maxPrefixBlocksToMatch: 256
        lruCapacityPerServer: 31250
    - type: queue-scorer
    - type: kv-cache-utilization-scorer
    - type: max-score-picker
    schedulingProfiles:
    - name: default
      plugins:
      - pluginRef: queue-scorer
        weight: 2
      - pluginRef: kv-cache-utilization-scorer
        weight: 2
      - pluginRef: prefix-cache-scorer
        weight: 3
      - pluginRef: max-score-picker
    """

    /// Least load: the router's in-flight count and the waiting queue, nothing else.
    public static let leastLoadYAML = """
    \(preamble)
    plugins:
    - type: active-request-scorer
    - type: queue-scorer
    - type: max-score-picker
    schedulingProfiles:
    - name: default
      plugins:
      - pluginRef: active-request-scorer
        weight: 1
      - pluginRef: queue-scorer
        weight: 1
      - pluginRef: max-score-picker
    """

    /// Round-robin over the endpoints that are up, as a mesh's ROUND_ROBIN load balancer.
    public static let roundRobinYAML = meshYAML(picker: "round-robin-picker")

    /// Uniformly random over the endpoints that are up (fallbacks in random order too).
    public static let randomYAML = meshYAML(picker: "random-picker", parameters: "maxNumOfEndpoints: 1024")

    /// The mesh without a picker: Istio's `consistentHash` on the session id
    /// (`minimumRingSize` 4096), random without a session.
    public static let consistentHashYAML = meshYAML(picker: "consistent-hash-picker", parameters: "minimumRingSize: 4096")

    /// The lines every built-in configuration starts with.
    static let preamble = """
    apiVersion: inference.networking.x-k8s.io/v1alpha1
    kind: EndpointPickerConfig
    """

    /// A mesh load balancer's rule: one profile without fallback, every endpoint that is up
    /// (however old its metrics), and `picker` (with one line of `parameters`, if any).
    static func meshYAML(picker: String, parameters: String? = nil) -> String {
        let pickerSpec = parameters.map { "- type: \(picker)\n  parameters:\n    \($0)" } ?? "- type: \(picker)"
        return """
        \(preamble)
        plugins:
        - type: single-profile-handler
          parameters:
            fallbackProfile: none
            headersOnlyProfile: none
        - type: healthy-filter
          parameters:
            checkMetricsAge: false
        \(pickerSpec)
        schedulingProfiles:
        - name: default
          plugins:
          - pluginRef: healthy-filter
          - pluginRef: \(picker)
        """
    }

    /// The built-ins by name, in the order the help lists them.
    public static let builtInNames = ["default", "kvroute-v1", "predicted-latency", "approx-prefix", "precise", "least-load", "round-robin", "random", "consistent-hash"]

    /// Older names that still select a built-in: the gateway's `--mode` values and the
    /// bench's policy names.
    static let builtInAliases = ["picker": "default", "kvroute": "default", "llm-d": "approx-prefix", "session-hash": "consistent-hash"]

    /// A built-in by name (or alias); nil for an unknown name.
    public static func builtIn(_ name: String) -> EndpointPickerConfig? {
        let canonical = builtInAliases[name] ?? name
        let yaml: String
        switch canonical {
        case "default", "kvroute-v1": yaml = kvrouteDefaultYAML
        case "predicted-latency": yaml = predictedLatencyYAML
        case "approx-prefix": yaml = llmdDefaultYAML
        case "precise": yaml = preciseYAML
        case "least-load": yaml = leastLoadYAML
        case "round-robin": yaml = roundRobinYAML
        case "random": yaml = randomYAML
        case "consistent-hash": yaml = consistentHashYAML
        default: return nil
        }
        return try! load(yaml: yaml, name: canonical)
    }

    public static var kvrouteDefault: EndpointPickerConfig { builtIn("default")! }
    public static var llmdDefault: EndpointPickerConfig { builtIn("approx-prefix")! }
    public static var leastLoad: EndpointPickerConfig { builtIn("least-load")! }
    public static var roundRobin: EndpointPickerConfig { builtIn("round-robin")! }
    public static var random: EndpointPickerConfig { builtIn("random")! }
    public static var consistentHash: EndpointPickerConfig { builtIn("consistent-hash")! }
}
