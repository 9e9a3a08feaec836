/// Per-request scratch space shared by the plugins of one decision: the request, the time
/// the caller decided at, and notes plugins compute once (a prompt's block hashes, a
/// prediction) for each other and for the learning that follows the pick.
public struct SchedulingContext: Sendable {
    public let request: InferenceRequest
    /// The decision's time, seconds on the caller's monotonic clock (the core reads none).
    public let now: Double
    /// Prefix blocks matched per endpoint and in all, for explanations (the prefix scorer).
    public var matchedPrefixBlocks: [EndpointAddress: Int] = [:]
    public var totalPrefixBlocks = 0
    private var notes: [String: any Sendable] = [:]

    /// A picker that returns no endpoint may say why here: the Scheduler throws this error
    /// (`.noCapacity` answers 429) instead of "the picker chose no endpoint", and no fallback
    /// profile takes over.
    public static let rejection = NoteKey<KVRouteError>("scheduler/rejection")

    public init(request: InferenceRequest, now: Double = 0) {
        self.request = request
        self.now = now
    }

    /// A note written by a plugin during the decision; ledger states read it when they learn
    /// from the admission (``LedgerEvent/admitted(_:)``).
    public subscript<Value: Sendable>(note key: NoteKey<Value>) -> Value? {
        get { notes[key.id] as? Value }
        set { notes[key.id] = newValue }
    }

    /// The context kept with a request in flight: its notes, without the prompt.
    var retained: SchedulingContext {
        var r = SchedulingContext(
            request: InferenceRequest(requestID: request.requestID, model: request.model, apiKind: request.apiKind, prompt: .none,
                                      sessionKey: request.sessionKey),
            now: now)
        r.notes = notes
        r.matchedPrefixBlocks = matchedPrefixBlocks
        r.totalPrefixBlocks = totalPrefixBlocks
        return r
    }
}

/// Names a typed note in a ``SchedulingContext``.
public struct NoteKey<Value: Sendable>: Sendable, Hashable {
    public let id: String
    public init(_ id: String) { self.id = id }
}

/// Removes endpoints a request must not go to.
public protocol EndpointFilter: Sendable {
    var type: String { get }
    var name: String { get }
    /// Returns the kept endpoints and why the others were dropped.
    func filter(_ candidates: [EndpointSnapshot], context: inout SchedulingContext) -> (kept: [EndpointSnapshot], reason: String)
}

/// Scores each candidate in 0…1 (higher is better): a pure function of the request, the
/// endpoints' snapshots and the router's ledger. A scorer keeps no state of its own; what it
/// learns lives in a ``LedgerState`` it declares in ``ledgerStates``, which the ledger
/// updates from routing events (pick, retry to another endpoint, finish, endpoint left).
public protocol EndpointScorer: Sendable {
    var type: String { get }
    var name: String { get }
    /// The ledger states this scorer reads; each Scheduler creates them empty in its ledger.
    var ledgerStates: [LedgerStateSpec] { get }
    func score(_ candidates: [EndpointSnapshot], context: inout SchedulingContext, ledger: RoutingLedger) -> [Double]
}

extension EndpointScorer {
    public var ledgerStates: [LedgerStateSpec] { [] }
}

/// Orders the scored candidates: the first is the primary, the rest are fallbacks (the
/// Scheduler appends every candidate the picker left out, by score). A picker refuses a
/// request by returning no endpoint with a ``SchedulingContext/rejection`` note.
public protocol EndpointPicker: Sendable {
    var type: String { get }
    var name: String { get }
    var ledgerStates: [LedgerStateSpec] { get }
    func pick(_ scored: [(endpoint: EndpointSnapshot, score: Double)], context: inout SchedulingContext, ledger: RoutingLedger,
              using rng: inout SeededGenerator) -> [EndpointAddress]
}

extension EndpointPicker {
    public var ledgerStates: [LedgerStateSpec] { [] }
}

/// Chooses the profile each request runs, and the profile that takes over when it fails.
public protocol ProfileHandler: Sendable {
    var type: String { get }
    var name: String { get }
    /// The profile for `request` (`headersOnly`: its body is unknown), or nil for the
    /// configuration's primary profile.
    func profile(for request: InferenceRequest, headersOnly: Bool) -> String?
    /// The profile that decides when `failed` threw `error` (nil: the error stands). "No
    /// candidates" and "no capacity" (a picker's refusal) errors always stand.
    func fallback(after error: any Error, in failed: String) -> String?
    /// Profiles the handler may name that the configuration need not define: built in.
    var impliedProfiles: [String] { get }
}

/// A configured plugin, built by ``PluginRegistry`` from its spec.
public enum PluginInstance: Sendable {
    case filter(any EndpointFilter)
    case scorer(any EndpointScorer)
    case picker(any EndpointPicker)
    case profileHandler(any ProfileHandler)

    var kind: String {
        switch self {
        case .filter: "filter"
        case .scorer: "scorer"
        case .picker: "picker"
        case .profileHandler: "profile handler"
        }
    }
}
