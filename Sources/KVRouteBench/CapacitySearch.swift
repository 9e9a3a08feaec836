import KVRouteEngineSim

/// Finds the arrival rate a cluster sustains on a workload, in virtual time, so load levels
/// can be stated as fractions of it.
///
/// A probe replays the whole workload at a multiple of its nominal arrival rate
/// (``Workload/scaled(by:)``) under one reference policy. The probe is saturated when
/// queueing explodes: the TTFT p90 of the second half of the arrivals exceeds
/// `queueingFactor` (5) × the light-load TTFT p90 and 1 s more (light load: the workload at
/// 1/64 of its nominal rate), or when requests go unanswered. Below capacity TTFT stays near
/// its light-load value however long the run; above it the engines' waiting queues grow for
/// as long as arrivals last, so late arrivals wait far longer than early ones. The search
/// doubles or halves the rate from nominal until one probe is saturated and one is not,
/// then bisects (geometric mean) `refinements` times; the capacity is the highest
/// unsaturated rate found.
public struct CapacitySearch: Sendable {
    public var simulation: Simulation
    public var policy: BenchPolicy
    public var queueingFactor = 5.0
    public var refinements = 4

    public init(simulation: Simulation, policy: BenchPolicy) {
        self.simulation = simulation
        self.policy = policy
    }

    public struct Probe: Sendable, Codable {
        /// The multiple of the workload's nominal arrival rate.
        public var scale: Double
        public var offeredRequestsPerS: Double
        /// TTFT p90 of the second half of the arrivals.
        public var lateTTFTP90Ms: Double
        public var saturated: Bool

        enum CodingKeys: String, CodingKey {
            case scale, saturated
            case offeredRequestsPerS = "offered_requests_per_s", lateTTFTP90Ms = "late_ttft_p90_ms"
        }
    }

    public struct Result: Sendable, Codable {
        /// The arrival-rate multiplier at capacity (1 = the workload's nominal rate).
        public var rateScale: Double
        /// Requests per second offered at capacity.
        public var requestsPerS: Double
        public var referencePolicy: String
        public var lightLoadTTFTP90Ms: Double
        public var probes: [Probe]

        enum CodingKeys: String, CodingKey {
            case probes
            case rateScale = "rate_scale", requestsPerS = "requests_per_s", referencePolicy = "reference_policy"
            case lightLoadTTFTP90Ms = "light_load_ttft_p90_ms"
        }
    }

    /// Offered requests per second and the TTFT p90 of the later half of the arrivals.
    static func measure(_ run: PolicyRun) -> (offered: Double, lateTTFTP90Ms: Double) {
        let o = run.outcomes.sorted { $0.arrival < $1.arrival }
        guard let first = o.first?.arrival, let last = o.last?.arrival, last > first else {
            return (0, Stats.percentile(o.map { $0.ttft * 1000 }.sorted(), 0.9))
        }
        let late = o[(o.count / 2)...].map { $0.ttft * 1000 }.sorted()
        return (Double(o.count + run.rejected) / (last - first), Stats.percentile(late, 0.9))
    }

    public func run(_ workload: any Workload, progress: (Probe) -> Void = { _ in }) throws -> Result {
        let base = Self.measure(try simulation.run(workload.scaled(by: 1.0 / 64), policy: policy)).lateTTFTP90Ms
        let limit = max(queueingFactor * base, base + 1000)
        var probes: [Probe] = []
        func probe(_ scale: Double) throws -> Bool {
            let run = try simulation.run(workload.scaled(by: scale), policy: policy)
            let m = Self.measure(run)
            let p = Probe(scale: scale, offeredRequestsPerS: m.offered, lateTTFTP90Ms: m.lateTTFTP90Ms,
                          saturated: m.lateTTFTP90Ms > limit || run.rejected > 0 || run.outcomes.isEmpty)
            probes.append(p)
            progress(p)
            return p.saturated
        }
        var lo: Double?, hi: Double?
        var scale = 1.0
        for _ in 0..<12 {
            if try probe(scale) {
                hi = scale
                if lo != nil { break }
                scale /= 2
            } else {
                lo = scale
                if hi != nil { break }
                scale *= 2
            }
        }
        if var l = lo, var h = hi {
            for _ in 0..<refinements {
                let mid = (l * h).squareRoot()
                if try probe(mid) { h = mid } else { l = mid }
            }
            lo = l
        }
        let best = lo ?? scale
        let at = probes.first { $0.scale == best }?.offeredRequestsPerS ?? 0
        return Result(rateScale: best, requestsPerS: at, referencePolicy: policy.name, lightLoadTTFTP90Ms: base, probes: probes)
    }
}
