import KVRouteCore

/// What the front doors' predicted-latency tests share: a ledger state that records how each
/// request ended, and a profile that sheds what no engine can serve within its SLO.
public enum PredictedLatencyFixtures {
    /// Every finished request's outcome, in order.
    public struct OutcomeRecorder: LedgerState {
        public var finished: [RequestOutcome] = []
        public init() {}
        public mutating func learn(_ event: LedgerEvent) {
            if case .finished(_, let o) = event { finished.append(o) }
        }
    }

    public static let recorder = LedgerKey<OutcomeRecorder>("test/recorder")

    /// Installs the recorder in a Scheduler's ledger (the outcomes start from here).
    public static func record(_ scheduler: Scheduler) {
        scheduler.withLedger { $0.install(LedgerStateSpec(recorder) { OutcomeRecorder() }) }
    }

    /// The outcomes recorded so far.
    public static func outcomes(_ scheduler: Scheduler) -> [RequestOutcome] {
        scheduler.withLedger { $0[recorder]?.finished ?? [] }
    }

    /// Predicted latency that sheds: `batch` requests (priority −1) that no engine is
    /// predicted to serve within their SLO are refused; the rest get best effort.
    public static let shedding = try! EndpointPickerConfig.load(yaml: """
    plugins:
    - type: predicted-latency-scorer
    - type: predicted-latency-picker
      parameters:
        noHeadroomPolicy: shed
        objectivePriorities: {batch: -1}
    schedulingProfiles:
    - name: default
      plugins:
      - pluginRef: predicted-latency-scorer
      - pluginRef: predicted-latency-picker
    """, name: "shedding")
}
