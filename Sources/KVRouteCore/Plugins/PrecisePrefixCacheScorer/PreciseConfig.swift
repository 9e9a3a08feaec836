extension EndpointPickerConfig {
    /// llm-d's precise prefix-cache profile: what each engine's KV events say it holds
    /// (weight 3), its waiting queue (2) and KV cache utilization (2), max-score picker. The
    /// front doors subscribe to the engines' events when a configuration names
    /// `precise-prefix-cache-scorer`; without events every prefix score is 0.
    public static let preciseYAML = """
    \(preamble)
    plugins:
    - type: precise-prefix-cache-scorer
      parameters:
        indexerConfig:
          tokenProcessorConfig:
            blockSize: 16
            hashSeed: "0"
    - type: queue-scorer
    - type: kv-cache-utilization-scorer
    - type: max-score-picker
    schedulingProfiles:
    - name: default
      plugins:
      - pluginRef: precise-prefix-cache-scorer
        weight: 3
      - pluginRef: queue-scorer
        weight: 2
      - pluginRef: kv-cache-utilization-scorer
        weight: 2
      - pluginRef: max-score-picker
    """
}
