import Foundation

extension Validator {
    /// The prefix-cache counters now (step 4's baseline, step 6's finals).
    ///
    /// Without Prometheus: each engine's `/metrics`. With Prometheus: its query API, once it
    /// has caught up — Prometheus scrapes on its own schedule, so a value read right after
    /// the loop may predate the last requests. Caught up means every engine's series is at
    /// least what the engine itself shows (when Prometheus's `instance` labels are the
    /// engines' addresses), else the sums are, else (no engine URLs) every series has been
    /// scraped since `mark`. Per-engine figures come from the engines when they are known.
    func counters(_ engines: [EngineTarget], _ probe: EngineProbe, since mark: Date,
                  _ warnings: inout [String]) async throws -> CacheCounters {
        let direct = engines.isEmpty ? nil : try await probe.counters(engines)
        guard let url = settings.prometheusURL else { return direct ?? CacheCounters(perEngine: [:]) }
        let prometheus = PrometheusClient(client: client, baseURL: url, model: settings.model)
        let deadline = Date().addingTimeInterval(settings.prometheusWaitSeconds)
        while true {
            let seen = try await prometheus.counters()
            let (caughtUp, value) = try await reconcile(seen, direct, prometheus, mark)
            if caughtUp { return value }
            if Date() >= deadline {
                if seen.perEngine.isEmpty {
                    throw ValidationFailure(.metrics, "Prometheus at \(url) has no data for \(prometheus.selector(PrometheusClient.queries)) (is it scraping the engines?)")
                }
                let w = "Prometheus had not caught up with the engines after \(Int(settings.prometheusWaitSeconds)) s (\(Self.count(value.queries)) queries"
                    + (direct.map { " vs \(Self.count($0.queries)) on the engines" } ?? "") + "); using its latest value"
                warnings.append(w)
                output.warning(w)
                return value
            }
            try await Task.sleep(for: .milliseconds(250))
        }
    }

    /// Whether Prometheus's figures include everything the engines counted, and the
    /// counters to use: Prometheus's totals, per-engine figures from the engines if known.
    func reconcile(_ seen: CacheCounters, _ direct: CacheCounters?, _ prometheus: PrometheusClient,
                   _ mark: Date) async throws -> (Bool, CacheCounters) {
        guard !seen.perEngine.isEmpty else { return (false, seen) }
        guard let direct else {
            let oldest = try await prometheus.oldestSampleTime() ?? 0
            return (oldest >= mark.timeIntervalSince1970, seen)
        }
        let ours = direct.perEngine.keys.filter { seen.perEngine[$0] != nil }
        if !ours.isEmpty {
            // Instances are the engines' addresses: compare engine by engine, count only ours.
            let mine = seen.perEngine.filter { direct.perEngine[$0.key] != nil }
            let caught = ours.count == direct.perEngine.count && direct.perEngine.allSatisfy { key, d in
                let p = mine[key]!
                return p.queries >= d.queries && p.hits >= d.hits
            }
            let sums = CacheCounters(perEngine: mine)
            return (caught, CacheCounters(queries: sums.queries, hits: sums.hits, perEngine: direct.perEngine))
        }
        // Relabelled instances: compare the sums.
        let caught = seen.queries >= direct.queries && seen.hits >= direct.hits
        return (caught, CacheCounters(queries: seen.queries, hits: seen.hits, perEngine: direct.perEngine))
    }
}
