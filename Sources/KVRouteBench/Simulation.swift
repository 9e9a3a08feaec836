import KVRouteCore
import KVRouteEngineSim
import KVRouteRouting

/// What one request did in a run.
public struct RequestOutcome: Sendable {
    public var id: Int
    public var engine: Int
    public var promptTokens: Int
    public var cachedTokens: Int
    public var completionTokens: Int
    public var arrival: Double
    public var ttft: Double
    public var finish: Double
    public var preemptions: Int
    public var decisionSeconds: Double
}

/// One policy's run of a workload in virtual time.
public struct PolicyRun: Sendable {
    public var policy: String
    public var outcomes: [RequestOutcome]
    public var engines: Int
    /// Requests in the order they were issued, with their answers (for the bounds).
    public var issued: [(tokens: [UInt32], answer: [UInt32])]
    public var rejected: Int
}

/// A discrete-event simulation: engines from the engine model, the real routing core in
/// front, virtual time throughout. Engines' metrics reach the router the way a scraper
/// delivers them: refreshed every `scrapeInterval` seconds.
public struct Simulation: Sendable {
    public var engines: Int
    public var engine: EngineConfiguration
    public var scrapeInterval: Double = 0.05
    public var seed: UInt64 = 1

    public init(engines: Int, engine: EngineConfiguration, seed: UInt64 = 1) {
        self.engines = engines
        self.engine = engine
        self.seed = seed
    }

    static func address(_ i: Int) -> EndpointAddress { EndpointAddress(host: "10.0.0.\(i + 1)", port: 8000) }

    /// Runs the workload to completion under one policy. `progress` is called with the
    /// number of finished requests now and then.
    public func run(_ workload: any Workload, policy: BenchPolicy, progress: (Int) -> Void = { _ in }) throws -> PolicyRun {
        let router = try policy.makeRouter(seed: seed)
        var cores: [EngineCore] = []
        for i in 0..<engines {
            var c = engine
            c.seed = engine.seed &+ UInt64(i)
            cores.append(try EngineCore(configuration: c))
        }
        let addresses = (0..<engines).map(Self.address)
        var busyUntil = [Double?](repeating: nil, count: engines)
        var pending = [StepResult?](repeating: nil, count: engines)
        var snapshots = addresses.map { EndpointSnapshot(address: $0, healthy: true, metricsAge: 0) }
        var lastScrape = -Double.infinity

        // Open-loop arrivals sorted by time; closed-loop ones wait for a free client slot.
        var initial = workload.initialRequests()
        var timed = initial.filter { $0.arrival != nil }.sorted { $0.arrival! < $1.arrival! }
        var queued = initial.filter { $0.arrival == nil }
        initial = []
        var nextTimed = 0
        var ready: [(Double, BenchRequest)] = []
        if let c = workload.concurrency {
            let start = queued.prefix(c)
            ready = start.map { (0, $0) }
            queued.removeFirst(min(c, queued.count))
        } else {
            ready = queued.map { (0, $0) }
            queued = []
        }

        var inEngine: [Int: [EngineRequestID: (BenchRequest, RoutingLease, [UInt32])]] = [:]
        var outcomes: [RequestOutcome] = []
        var issued: [(tokens: [UInt32], answer: [UInt32])] = []
        var issuedIndex: [Int: Int] = [:]
        var rejected = 0
        var nextID = (timed.map(\.id).max() ?? -1) + (ready.map(\.1.id).max() ?? -1) + queued.count + 2
        var now = 0.0

        func refreshSnapshots() {
            guard now - lastScrape >= scrapeInterval else { return }
            lastScrape = now
            for i in 0..<engines {
                snapshots[i].waitingRequests = cores[i].numWaiting
                snapshots[i].runningRequests = cores[i].numRunning
                snapshots[i].kvCacheUsage = cores[i].pool.usage
            }
        }

        func startStep(_ e: Int) {
            guard busyUntil[e] == nil, cores[e].hasWork else { return }
            let s = cores[e].step(now: now)
            if s.outputs.isEmpty && s.duration == 0 { return }
            busyUntil[e] = s.end
            pending[e] = s
        }

        func admit(_ r: BenchRequest, decisionClockStart: Void = ()) {
            refreshSnapshots()
            let inference = InferenceRequest(requestID: String(r.id), model: engine.model, apiKind: r.apiKind, prompt: r.prompt, sessionKey: r.session)
            let lease: RoutingLease
            do {
                lease = try router.route(inference, snapshots: snapshots)
            } catch {
                rejected += 1
                return
            }
            guard let e = addresses.firstIndex(of: lease.primary) else { rejected += 1; return }
            do {
                let id = try cores[e].add(EngineRequest(promptTokens: r.tokens, maxTokens: r.maxTokens), at: now)
                inEngine[e, default: [:]][id] = (r, lease, [])
                issuedIndex[r.id] = issued.count
                issued.append((r.tokens, []))
                startStep(e)
            } catch {
                rejected += 1
                lease.finished(servedBy: nil, outcome: .failed(code: 400))
            }
        }

        while true {
            let nextArrival: Double? = {
                var t: Double? = nextTimed < timed.count ? timed[nextTimed].arrival! : nil
                if let r = ready.first { t = min(t ?? r.0, r.0) }
                return t
            }()
            var stepEngine: Int?
            for e in 0..<engines { if let b = busyUntil[e], b <= (stepEngine.flatMap { busyUntil[$0] } ?? .infinity) { stepEngine = e } }
            let nextStep = stepEngine.flatMap { busyUntil[$0] }
            guard nextArrival != nil || nextStep != nil else { break }

            if let ns = nextStep, ns <= (nextArrival ?? .infinity), let e = stepEngine {
                now = ns
                let s = pending[e]!
                busyUntil[e] = nil
                pending[e] = nil
                for out in s.outputs {
                    if let t = out.token { inEngine[e]?[out.id]?.2.append(t) }
                    guard let f = out.finished, let (r, lease, answer) = inEngine[e]?.removeValue(forKey: out.id) else { continue }
                    outcomes.append(RequestOutcome(
                        id: r.id, engine: e, promptTokens: f.promptTokens, cachedTokens: f.cachedTokens, completionTokens: f.completionTokens,
                        arrival: f.arrival, ttft: f.timeToFirstToken, finish: f.finishTime, preemptions: f.preemptions, decisionSeconds: lease.decision.decisionSeconds))
                    if let k = issuedIndex.removeValue(forKey: r.id) { issued[k].answer = answer }
                    lease.finished(servedBy: addresses[e], outcome: .answered(status: 200))
                    if outcomes.count % 500 == 0 { progress(outcomes.count) }
                    if workload.concurrency != nil {
                        if var follow = workload.next(after: r, answer: answer, id: nextID) {
                            nextID += 1
                            follow.arrival = nil
                            ready.append((now, follow))
                        } else if !queued.isEmpty {
                            ready.append((now, queued.removeFirst()))
                        }
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
        timed = []
        progress(outcomes.count)
        let preempt = cores.map(\.stats.preemptions).reduce(0, +)
        _ = preempt
        return PolicyRun(policy: policy.name, outcomes: outcomes, engines: engines, issued: issued, rejected: rejected)
    }
}
