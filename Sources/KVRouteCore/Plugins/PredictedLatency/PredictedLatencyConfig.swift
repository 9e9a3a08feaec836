extension EndpointPickerConfig {
    /// The predicted-latency profile: every candidate is priced by the latency this request
    /// would see there (prefix reuse, queued prefill, decode batch, each endpoint's learned
    /// speed), and the cheapest wins; SLO headers narrow the choice to endpoints predicted to
    /// meet them, with best effort when none does. Nothing in it is tuned to a workload: the
    /// model starts from an H100-class prior and learns every endpoint from its answers.
    public static let predictedLatencyYAML = """
    \(preamble)
    plugins:
    - type: decode-filter
    - type: predicted-latency-scorer
    - type: predicted-latency-picker
      parameters:
        noHeadroomPolicy: best-effort
    schedulingProfiles:
    - name: default
      plugins:
      - pluginRef: decode-filter
      - pluginRef: predicted-latency-scorer
        weight: 1
      - pluginRef: predicted-latency-picker
    """
}
