/// Per-request scratch space shared by the plugins of one decision.
public struct SchedulingContext: Sendable {
    public let request: InferenceRequest
    /// Requests the router has in flight per endpoint, counted at pick time.
    public let inFlight: [EndpointAddress: Int]
    /// The endpoint this session last went to, if the Scheduler remembers one.
    public let sessionEndpoint: EndpointAddress?
    /// Prefix blocks matched on the endpoint the prefix scorer liked best (for explanations).
    public var matchedPrefixBlocks: [EndpointAddress: Int] = [:]
    public var totalPrefixBlocks = 0
    /// Chain hashes computed once per request by the prefix scorer.
    var prefixHashes: [String: [UInt64]] = [:]
}

/// Removes endpoints a request must not go to.
public protocol EndpointFilter: Sendable {
    var type: String { get }
    var name: String { get }
    /// Returns the kept endpoints; `reasons` receives one line per dropped endpoint.
    func filter(_ candidates: [EndpointSnapshot], context: inout SchedulingContext) -> (kept: [EndpointSnapshot], reason: String)
}

/// Scores each candidate in 0…1 (higher is better).
public protocol EndpointScorer: Sendable {
    var type: String { get }
    var name: String { get }
    func score(_ candidates: [EndpointSnapshot], context: inout SchedulingContext) -> [Double]
    /// Told which endpoint was chosen, so stateful scorers can learn (the prefix index).
    func picked(_ endpoint: EndpointAddress, context: SchedulingContext)
    /// Told that `endpoint` served the request instead of `picked` (a retry to a fallback), so
    /// what the pick taught moves to the endpoint that really holds the prompt.
    func served(_ endpoint: EndpointAddress, insteadOf picked: EndpointAddress, context: SchedulingContext)
    /// Told that an endpoint left the pool.
    func forget(_ endpoint: EndpointAddress)
}

extension EndpointScorer {
    public func picked(_ endpoint: EndpointAddress, context: SchedulingContext) {}
    public func served(_ endpoint: EndpointAddress, insteadOf picked: EndpointAddress, context: SchedulingContext) {
        self.picked(endpoint, context: context)
    }
    public func forget(_ endpoint: EndpointAddress) {}
}

/// Orders the scored candidates: the first is the primary, the rest are fallbacks.
public protocol EndpointPicker: Sendable {
    var type: String { get }
    var name: String { get }
    func pick(_ scored: [(endpoint: EndpointSnapshot, score: Double)], using rng: inout SeededGenerator) -> [EndpointAddress]
}

/// A configured plugin before it is placed in a profile.
public enum PluginInstance: Sendable {
    case filter(any EndpointFilter)
    case scorer(any EndpointScorer)
    case picker(any EndpointPicker)
    /// Accepted for compatibility; kvroute runs one profile per request.
    case profileHandler(String)

    var kind: String {
        switch self {
        case .filter: "filter"
        case .scorer: "scorer"
        case .picker: "picker"
        case .profileHandler: "profile handler"
        }
    }
}
