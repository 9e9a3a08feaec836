/// Everything the router itself knows and learns, in one place: requests in flight per
/// endpoint, the endpoint each session last went to, and the typed states plugins keep
/// (the prefix index, a round-robin turn, learned latencies…). Plugins read it; only routing
/// events change it: a request admitted to an endpoint, served by another one instead (a
/// retry), finished (with what was observed), or an endpoint leaving the pool. Each
/// Scheduler owns one, under its lock, so the decision and the bookkeeping are atomic.
///
/// A plugin with router-side state declares it in `ledgerStates` as a ``LedgerStateSpec``
/// (a ``LedgerKey`` and a factory); the Scheduler installs every declared state once, and
/// every state hears every ``LedgerEvent`` through ``LedgerState/learn(_:)``. Outside feeds
/// (engine KV events) change a state through ``Scheduler/withLedger(_:)``.
public struct RoutingLedger: Sendable {
    public private(set) var inFlight: [EndpointAddress: Int] = [:]
    /// Requests in flight by the Scheduler's request id.
    public private(set) var requests: [String: RequestRecord] = [:]
    var sessions: SessionMemory
    private var states: [String: any LedgerState] = [:]

    public init(sessionCapacity: Int = 100_000) {
        sessions = SessionMemory(capacity: sessionCapacity)
    }

    /// A ledger with these counts and sessions already known (for tables of scorer cases).
    public init(inFlight: [EndpointAddress: Int], sessions: [String: EndpointAddress] = [:]) {
        self.init()
        self.inFlight = inFlight.filter { $0.value > 0 }
        for (k, e) in sessions { self.sessions.set(k, e) }
    }

    public func inFlight(_ e: EndpointAddress) -> Int { inFlight[e] ?? 0 }
    public var inFlightTotal: Int { inFlight.values.reduce(0, +) }

    /// The endpoint this session's last request went to.
    public func sessionEndpoint(_ key: String?) -> EndpointAddress? { key.flatMap { sessions.get($0) } }

    // MARK: Plugin states

    public subscript<S: LedgerState>(_ key: LedgerKey<S>) -> S? { states[key.id] as? S }

    /// Creates the state unless one with its key exists (plugins sharing a key share it).
    public mutating func install(_ spec: LedgerStateSpec) {
        if states[spec.id] == nil { states[spec.id] = spec.make() }
    }

    /// Changes a state in place (nil when it is not installed).
    @discardableResult
    public mutating func update<S: LedgerState, R>(_ key: LedgerKey<S>, _ body: (inout S) throws -> R) rethrows -> R? {
        // Taken out of the table while it changes, so its storage is not copied.
        guard let any = states.removeValue(forKey: key.id) else { return nil }
        guard var s = any as? S else {
            states[key.id] = any
            return nil
        }
        defer { states[key.id] = s }
        return try body(&s)
    }

    /// Every state learns in place: the table is walked by index and each value changed where
    /// it lies (no key list, no rehashing, no copy of a state's storage).
    private mutating func broadcast(_ event: LedgerEvent) {
        var i = states.startIndex
        while i != states.endIndex {
            states.values[i].learn(event)
            states.formIndex(after: &i)
        }
    }

    // MARK: Routing events

    /// A request goes to `record.endpoint`: counted in flight, its session remembers the
    /// endpoint, and every state learns the admission. A record with the id of one still in
    /// flight replaces it.
    public mutating func admit(_ record: RequestRecord) {
        if let old = requests.updateValue(record, forKey: record.requestID) { release(old.endpoint) }
        inFlight[record.endpoint, default: 0] += 1
        if let key = record.session { sessions.set(key, record.endpoint) }
        broadcast(.admitted(record))
    }

    /// Another endpoint serves the request (a retry to a fallback): its in-flight count, its
    /// session and what the states learned from its admission move there.
    public mutating func move(requestID: String, to endpoint: EndpointAddress) {
        guard var r = requests[requestID], r.endpoint != endpoint else { return }
        let from = r.endpoint
        release(from)
        inFlight[endpoint, default: 0] += 1
        r.endpoint = endpoint
        requests[requestID] = r
        if let key = r.session { sessions.set(key, endpoint) }
        broadcast(.moved(r, from: from))
    }

    /// The request ended: moved first when another endpoint served it, then released, and
    /// every state learns the outcome. Unknown ids are ignored.
    public mutating func finish(requestID: String, outcome: RequestOutcome) {
        if let servedBy = outcome.servedBy { move(requestID: requestID, to: servedBy) }
        guard let r = requests.removeValue(forKey: requestID) else { return }
        release(r.endpoint)
        broadcast(.finished(r, outcome))
    }

    /// Remembers where a session's request was served (when something else than a decision
    /// placed it).
    public mutating func sessionServed(_ session: String, by endpoint: EndpointAddress) {
        sessions.set(session, endpoint)
    }

    /// The endpoint left the pool: its count goes and every state forgets it.
    public mutating func endpointLeft(_ endpoint: EndpointAddress) {
        inFlight[endpoint] = nil
        broadcast(.endpointLeft(endpoint))
    }

    private mutating func release(_ endpoint: EndpointAddress) {
        let n = (inFlight[endpoint] ?? 1) - 1
        inFlight[endpoint] = n > 0 ? n : nil
    }
}

/// A request in flight as the ledger keeps it.
public struct RequestRecord: Sendable {
    public let requestID: String
    /// Where it is counted now: the decision's primary, or the endpoint that took over.
    public internal(set) var endpoint: EndpointAddress
    public let session: String?
    /// When it was admitted, seconds on the caller's clock.
    public let admittedAt: Double
    /// The name of the profile that decided.
    public let profile: String
    /// The decision's context (its notes, without the prompt).
    public let context: SchedulingContext

    public init(requestID: String, endpoint: EndpointAddress, session: String?, admittedAt: Double, profile: String, context: SchedulingContext) {
        self.requestID = requestID
        self.endpoint = endpoint
        self.session = session
        self.admittedAt = admittedAt
        self.profile = profile
        self.context = context
    }
}

/// How a request ended, with what the front door observed of its answer.
public struct RequestOutcome: Sendable, Equatable {
    public enum Result: Sendable, Equatable {
        /// The engine answered with this HTTP status (nil: not known).
        case answered(status: Int?)
        /// It failed with this code (an HTTP status, 499 when the client left).
        case failed(code: Int)
        /// The answer passed unseen (Envoy does not send the response side).
        case unobserved
        /// Dropped unfinished.
        case abandoned
    }

    /// The endpoint that answered (nil: none did, or not known).
    public var servedBy: EndpointAddress?
    public var result: Result
    /// When it ended, seconds on the caller's clock (the ledger's `admittedAt` clock).
    public var finishedAt: Double
    /// Seconds from admission to the answer's first byte, when observed.
    public var timeToFirstByte: Double?
    /// Whether the answer was streamed (its first byte is its first token) or sent whole
    /// (its first byte comes with the last token); nil when not known.
    public var streamed: Bool?
    /// The answer's usage, when it reported one.
    public var promptTokens: Int?
    public var cachedTokens: Int?
    public var completionTokens: Int?

    public init(servedBy: EndpointAddress?, result: Result = .unobserved, finishedAt: Double = 0, timeToFirstByte: Double? = nil,
                streamed: Bool? = nil, promptTokens: Int? = nil, cachedTokens: Int? = nil, completionTokens: Int? = nil) {
        self.servedBy = servedBy
        self.result = result
        self.finishedAt = finishedAt
        self.timeToFirstByte = timeToFirstByte
        self.streamed = streamed
        self.promptTokens = promptTokens
        self.cachedTokens = cachedTokens
        self.completionTokens = completionTokens
    }
}

/// What plugin states learn from.
public enum LedgerEvent: Sendable {
    /// A decision placed the request on `record.endpoint`.
    case admitted(RequestRecord)
    /// The request moved from `from` to `record.endpoint` (a retry to a fallback).
    case moved(RequestRecord, from: EndpointAddress)
    /// The request ended on `record.endpoint`.
    case finished(RequestRecord, RequestOutcome)
    /// The endpoint left the pool.
    case endpointLeft(EndpointAddress)
}

/// Router-side state a plugin keeps in the ledger. It changes only through ``learn(_:)`` (and
/// ``RoutingLedger/update(_:_:)`` for outside feeds), under the Scheduler's lock.
public protocol LedgerState: Sendable {
    mutating func learn(_ event: LedgerEvent)
}

/// Names a typed state in the ledger.
public struct LedgerKey<State: LedgerState>: Sendable, Hashable {
    public let id: String
    public init(_ id: String) { self.id = id }
}

/// A state a plugin needs: its key and how to make it empty.
public struct LedgerStateSpec: Sendable {
    let id: String
    let make: @Sendable () -> any LedgerState

    public init<S: LedgerState>(_ key: LedgerKey<S>, make: @escaping @Sendable () -> S) {
        id = key.id
        self.make = make
    }
}

/// session id → last endpoint, bounded (oldest sessions forgotten first).
struct SessionMemory: Sendable {
    let capacity: Int
    private var map: [String: EndpointAddress] = [:]
    private var order: [String] = []
    private var head = 0

    init(capacity: Int) { self.capacity = capacity }

    func get(_ key: String) -> EndpointAddress? { map[key] }

    mutating func set(_ key: String, _ e: EndpointAddress) {
        if map.updateValue(e, forKey: key) == nil {
            order.append(key)
            if map.count > capacity {
                while head < order.count {
                    let old = order[head]
                    head += 1
                    if map.removeValue(forKey: old) != nil { break }
                }
                if head > capacity { order.removeFirst(head); head = 0 }
            }
        }
    }
}
