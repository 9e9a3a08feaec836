import KVRouteCore
import KVRouteEngineSim
import KVRouteKVEvents
import KVRouteRouting

/// What one request did in a run.
public struct RequestOutcome: Sendable {
    public var id: Int
    /// The engine that answered; nil when the run could not tell (a live gateway that names
    /// no upstream).
    public var engine: Int?
    public var promptTokens: Int
    public var cachedTokens: Int
    public var completionTokens: Int
    /// When the client sent it (seconds from the start of the run).
    public var arrival: Double
    /// Time to first token as the client saw it, failed attempts included.
    public var ttft: Double
    public var finish: Double
    /// nil when not measured (live mode).
    public var preemptions: Int?
    /// The router's decision time; nil when not measured (live mode through a peer).
    public var decisionSeconds: Double?

    public init(id: Int, engine: Int?, promptTokens: Int, cachedTokens: Int, completionTokens: Int, arrival: Double, ttft: Double, finish: Double,
                preemptions: Int?, decisionSeconds: Double?) {
        self.id = id
        self.engine = engine
        self.promptTokens = promptTokens
        self.cachedTokens = cachedTokens
        self.completionTokens = completionTokens
        self.arrival = arrival
        self.ttft = ttft
        self.finish = finish
        self.preemptions = preemptions
        self.decisionSeconds = decisionSeconds
    }
}

/// One policy's run of a workload.
public struct PolicyRun: Sendable {
    public var policy: String
    public var outcomes: [RequestOutcome]
    public var engines: Int
    /// Requests in the order they were issued, with their answers (for the bounds).
    public var issued: [(tokens: [UInt32], answer: [UInt32])]
    /// Requests never answered.
    public var rejected: Int
    /// Attempts that failed and were sent again elsewhere (an engine went away under them).
    public var errors: Int = 0
    /// Requests per engine when the outcomes cannot tell (live: the engines' own counters).
    public var requestsPerEngine: [Int]?

    public init(policy: String, outcomes: [RequestOutcome], engines: Int, issued: [(tokens: [UInt32], answer: [UInt32])], rejected: Int,
                errors: Int = 0, requestsPerEngine: [Int]? = nil) {
        self.policy = policy
        self.outcomes = outcomes
        self.engines = engines
        self.issued = issued
        self.rejected = rejected
        self.errors = errors
        self.requestsPerEngine = requestsPerEngine
    }
}

/// An engine that stops answering mid-run: at `atFraction` of the workload's arrival span
/// it drops everything it holds; the requests on it fail over to other engines.
public struct EngineFailure: Sendable, Hashable {
    public var engine: Int
    public var atFraction: Double
    public init(engine: Int, atFraction: Double) {
        self.engine = engine
        self.atFraction = atFraction
    }
}

/// A discrete-event simulation: engines from the engine model, the real routing core in
/// front, virtual time throughout. Engines' metrics reach the router the way a scraper
/// delivers them: refreshed every `scrapeInterval` seconds; a dead engine is seen as
/// unhealthy from the next scrape on, and requests sent to it before then fail and are
/// sent again (a gateway's retry on another endpoint).
public struct Simulation: Sendable {
    public var engines: Int
    public var engine: EngineConfiguration
    public var scrapeInterval: Double = 0.05
    public var seed: UInt64 = 1
    /// Step-time multipliers by engine index (a slower GPU: 2 = half as fast).
    public var slowdowns: [Int: Double] = [:]
    public var failure: EngineFailure?

    public init(engines: Int, engine: EngineConfiguration, seed: UInt64 = 1) {
        self.engines = engines
        self.engine = engine
        self.seed = seed
    }

    static func address(_ i: Int) -> EndpointAddress { EndpointAddress(host: "10.0.0.\(i + 1)", port: 8000) }

    /// Runs the workload to completion under one policy. `progress` is called with the
    /// number of finished requests now and then.
    public func run(_ workload: any Workload, policy: BenchPolicy, progress: (Int) -> Void = { _ in }) throws -> PolicyRun {
        try run(workload, router: try policy.makeRouter(seed: seed), policyName: policy.name, progress: progress)
    }

    /// The same through a given router (tests read its ledger afterwards).
    func run(_ workload: any Workload, router: RequestRouter, policyName: String, progress: (Int) -> Void = { _ in }) throws -> PolicyRun {
        var cores: [EngineCore] = []
        let precise = BenchPreciseFeed.install(into: router)
        for i in 0..<engines {
            var c = engine
            c.seed = engine.seed &+ UInt64(i)
            if precise != nil { c.recordKVEvents = true }
            var core = try EngineCore(configuration: c)
            core.slowdown = slowdowns[i] ?? 1
            cores.append(core)
        }
        let addresses = (0..<engines).map(Self.address)
        var busyUntil = [Double?](repeating: nil, count: engines)
        var pending = [StepResult?](repeating: nil, count: engines)
        // The KV events of each engine's step in progress: a subscriber sees them as it ends.
        var stepEvents = [[KVEvent]](repeating: [], count: engines)
        var dead = [Bool](repeating: false, count: engines)
        var snapshots = addresses.map { EndpointSnapshot(address: $0, healthy: true, metricsAge: 0) }
        var lastScrape = -Double.infinity

        // Open-loop arrivals sorted by time; closed-loop ones wait for a free client slot.
        let initial = workload.initialRequests()
        let timed = initial.filter { $0.arrival != nil }.sorted { $0.arrival! < $1.arrival! }
        var queued = initial.filter { $0.arrival == nil }
        var nextTimed = 0
        // Requests due at a time (follow-ups after think time, closed-loop starts), by time.
        var ready: [(Double, BenchRequest)] = []
        func schedule(_ at: Double, _ r: BenchRequest) {
            var i = ready.count
            while i > 0 && ready[i - 1].0 > at { i -= 1 }
            ready.insert((at, r), at: i)
        }
        if let c = workload.concurrency {
            for r in queued.prefix(c) { schedule(0, r) }
            queued.removeFirst(min(c, queued.count))
        } else {
            for r in queued { schedule(0, r) }
            queued = []
        }
        var failAt: Double? = failure.map { $0.atFraction * (timed.last?.arrival ?? 0) }
        var detectAt: Double?

        var inEngine: [Int: [EngineRequestID: (BenchRequest, RoutingLease, [UInt32])]] = [:]
        var sentAt: [Int: Double] = [:]
        var outcomes: [RequestOutcome] = []
        var issued: [(tokens: [UInt32], answer: [UInt32])] = []
        var issuedIndex: [Int: Int] = [:]
        var rejected = 0, errors = 0
        var nextID = (initial.map(\.id).max() ?? 0) + 1
        var now = 0.0

        func refreshSnapshots() {
            guard now - lastScrape >= scrapeInterval else { return }
            lastScrape = now
            for i in 0..<engines where !dead[i] {
                snapshots[i].waitingRequests = cores[i].numWaiting
                snapshots[i].runningRequests = cores[i].numRunning
                snapshots[i].kvCacheUsage = cores[i].pool.usage
            }
        }

        func startStep(_ e: Int) {
            guard !dead[e], busyUntil[e] == nil, cores[e].hasWork else { return }
            let s = cores[e].step(now: now)
            if precise != nil { stepEvents[e] += cores[e].takeKVEvents() }
            if s.outputs.isEmpty && s.duration == 0 { return }
            busyUntil[e] = s.end
            pending[e] = s
        }

        /// Routes and sends one request; a dead engine's refusal is an error and the request
        /// goes again with that engine excluded.
        func send(_ r: BenchRequest, excluding: Set<Int> = []) {
            refreshSnapshots()
            var view = snapshots
            for e in excluding { view[e].healthy = false }
            let inference = InferenceRequest(requestID: String(r.id), model: engine.model, apiKind: r.apiKind, prompt: r.prompt, sessionKey: r.session)
            precise?.prompt(r.tokens)
            let lease: RoutingLease
            do {
                lease = try router.route(inference, snapshots: view, started: router.instant(atSeconds: now))
            } catch {
                rejected += 1
                return
            }
            guard let e = addresses.firstIndex(of: lease.primary) else { rejected += 1; return }
            if dead[e] {
                errors += 1
                lease.finished(servedBy: addresses[e], outcome: .failed(code: 503), at: router.instant(atSeconds: now))
                guard excluding.count + 1 < engines else { rejected += 1; return }
                return send(r, excluding: excluding.union([e]))
            }
            do {
                let id = try cores[e].add(EngineRequest(promptTokens: r.tokens, maxTokens: r.maxTokens), at: now)
                inEngine[e, default: [:]][id] = (r, lease, [])
                if issuedIndex[r.id] == nil {
                    issuedIndex[r.id] = issued.count
                    issued.append((r.tokens, []))
                }
                startStep(e)
            } catch {
                rejected += 1
                lease.finished(servedBy: nil, outcome: .failed(code: 400), at: router.instant(atSeconds: now))
            }
        }

        func admit(_ r: BenchRequest) {
            sentAt[r.id] = now
            send(r)
        }

        func fail(_ e: Int) {
            dead[e] = true
            busyUntil[e] = nil
            pending[e] = nil
            detectAt = now + scrapeInterval
            let lost = inEngine.removeValue(forKey: e) ?? [:]
            for (id, (r, lease, _)) in lost.sorted(by: { $0.key < $1.key }) {
                cores[e].abort(id)
                errors += 1
                lease.finished(servedBy: addresses[e], outcome: .failed(code: 503), at: router.instant(atSeconds: now))
                send(r, excluding: [e])
            }
        }

        while true {
            var nextArrival: Double? = nextTimed < timed.count ? timed[nextTimed].arrival! : nil
            if let r = ready.first { nextArrival = min(nextArrival ?? r.0, r.0) }
            var stepEngine: Int?
            for e in 0..<engines { if let b = busyUntil[e], b <= (stepEngine.flatMap { busyUntil[$0] } ?? .infinity) { stepEngine = e } }
            let nextStep = stepEngine.flatMap { busyUntil[$0] }
            let nextFailure = [failAt, detectAt].compactMap { $0 }.min()
            guard nextArrival != nil || nextStep != nil else { break }

            if let f = nextFailure, f <= min(nextArrival ?? .infinity, nextStep ?? .infinity) {
                now = f
                if f == failAt, let failure, failure.engine < engines {
                    failAt = nil
                    fail(failure.engine)
                } else {
                    failAt = failAt == f ? nil : failAt
                    detectAt = nil
                    for e in 0..<engines where dead[e] { snapshots[e].healthy = false }
                }
            } else if let ns = nextStep, ns <= (nextArrival ?? .infinity), let e = stepEngine {
                now = ns
                let s = pending[e]!
                busyUntil[e] = nil
                pending[e] = nil
                if let precise {
                    precise.apply(stepEvents[e], engine: addresses[e], now: now)
                    stepEvents[e] = []
                }
                for out in s.outputs {
                    if let t = out.token { inEngine[e]?[out.id]?.2.append(t) }
                    guard let f = out.finished, let (r, lease, answer) = inEngine[e]?.removeValue(forKey: out.id) else { continue }
                    let sent = sentAt.removeValue(forKey: r.id) ?? f.arrival
                    outcomes.append(RequestOutcome(
                        id: r.id, engine: e, promptTokens: f.promptTokens, cachedTokens: f.cachedTokens, completionTokens: f.completionTokens,
                        arrival: sent, ttft: f.firstTokenTime - sent, finish: f.finishTime, preemptions: f.preemptions, decisionSeconds: lease.decision.decisionSeconds))
                    if let k = issuedIndex.removeValue(forKey: r.id) { issued[k].answer = answer }
                    // What a front door observes of a streamed answer, in virtual time.
                    lease.firstByte(at: router.instant(atSeconds: f.firstTokenTime))
                    lease.finished(
                        servedBy: addresses[e], outcome: .answered(status: 200),
                        usage: ResponseUsage(promptTokens: f.promptTokens, completionTokens: f.completionTokens, cachedTokens: f.cachedTokens),
                        streamed: true, at: router.instant(atSeconds: f.finishTime))
                    if outcomes.count % 100 == 0 { progress(outcomes.count) }
                    if var follow = workload.next(after: r, answer: answer, id: nextID) {
                        nextID += 1
                        let delay = follow.arrival ?? 0
                        follow.arrival = nil
                        schedule(now + delay, follow)
                    } else if workload.concurrency != nil, !queued.isEmpty {
                        schedule(now, queued.removeFirst())
                    }
                }
                startStep(e)
            } else {
                now = nextArrival!
                if nextTimed < timed.count, timed[nextTimed].arrival! <= now, ready.first.map({ $0.0 > timed[nextTimed].arrival! }) ?? true {
                    let r = timed[nextTimed]
                    nextTimed += 1
                    admit(r)
                } else if !ready.isEmpty {
                    let (_, r) = ready.removeFirst()
                    admit(r)
                }
            }
        }
        progress(outcomes.count)
        return PolicyRun(policy: policyName, outcomes: outcomes, engines: engines, issued: issued, rejected: rejected, errors: errors)
    }
}
