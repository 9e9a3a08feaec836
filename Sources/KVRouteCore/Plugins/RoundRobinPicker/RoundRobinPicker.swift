/// `round-robin-picker`: takes the candidates in turn, whatever their scores. The primary is
/// the candidate at the turn's position; the fallbacks follow in order. The turn is router
/// state: ``RoundRobinTurn`` in the ledger, advanced by every request this picker placed.
public struct RoundRobinPicker: EndpointPicker {
    public let type = "round-robin-picker"
    public let name: String
    public let maxNumOfEndpoints: Int

    public init(name: String, maxNumOfEndpoints: Int = Int(Int32.max)) {
        self.name = name
        self.maxNumOfEndpoints = max(1, maxNumOfEndpoints)
    }

    static func make(name: String, parameters p: inout PluginParameters) throws -> RoundRobinPicker {
        RoundRobinPicker(name: name, maxNumOfEndpoints: try p.int("maxNumOfEndpoints", default: Int(Int32.max), min: 1))
    }

    var key: LedgerKey<RoundRobinTurn> { LedgerKey("round-robin-picker/\(name)") }
    public var ledgerStates: [LedgerStateSpec] { [LedgerStateSpec(key) { RoundRobinTurn(picker: name) }] }

    public func pick(_ scored: [(endpoint: EndpointSnapshot, score: Double)], context: inout SchedulingContext, ledger: RoutingLedger,
                     using rng: inout SeededGenerator) -> [EndpointAddress] {
        guard !scored.isEmpty else { return [] }
        let start = (ledger[key]?.next ?? 0) % scored.count
        context[note: RoundRobinTurn.placedBy] = name
        return (0..<min(scored.count, maxNumOfEndpoints)).map { scored[(start + $0) % scored.count].endpoint.address }
    }
}

/// The next turn of one round-robin picker: advanced by each request it placed.
public struct RoundRobinTurn: LedgerState {
    let picker: String
    public private(set) var next = 0
    /// Names the picker that placed a request.
    static let placedBy = NoteKey<String>("round-robin-picker")

    public mutating func learn(_ event: LedgerEvent) {
        if case .admitted(let r) = event, r.context[note: Self.placedBy] == picker { next &+= 1 }
    }
}
