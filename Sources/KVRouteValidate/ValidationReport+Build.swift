import Foundation
import KVRouteStats

extension ValidationReport {
    /// Computes every figure from the counters before and after the measured loop and the
    /// loop's samples, and the verdict against the settings' thresholds.
    init(settings: ValidationSettings, engines: [EngineTarget], before: CacheCounters, after: CacheCounters,
         samples: [ChatSample], source: String, warnings: [String]) {
        let dq = after.queries - before.queries, dh = after.hits - before.hits
        let ok = samples.filter(\.ok)

        // Engines: counter deltas, and requests attributed by the upstream header.
        var byUpstream: [String: Int] = [:]
        for s in ok { if let u = s.upstream { byUpstream[u, default: 0] += 1 } }
        let engineRows = engines.map { e -> Engine in
            let b = before.perEngine[e.address] ?? .init(queries: 0, hits: 0)
            let a = after.perEngine[e.address] ?? .init(queries: 0, hits: 0)
            let q = a.queries - b.queries, h = a.hits - b.hits
            let served = (byUpstream[e.address] ?? 0) + (e.name.flatMap { byUpstream[$0] } ?? 0)
            return Engine(address: e.address, name: e.name, queryDelta: q, hitDelta: h, hitRate: q > 0 ? h / q : nil, requests: served)
        }
        let positive = engineRows.map { max(0, $0.queryDelta) }
        let spread = positive.reduce(0, +)
        let metricsStickiness: Double? = spread > 0 ? (positive.max() ?? 0) / spread : nil

        // Sessions: the top upstream's share of each session's successful requests.
        let sessionRows = settings.sessionIDs.map { id -> Session in
            let mine = samples.filter { $0.session == id }
            let good = mine.filter(\.ok)
            var counts: [String: Int] = [:]
            for s in good { if let u = s.upstream { counts[u, default: 0] += 1 } }
            let top = counts.max { ($0.value, $1.key) < ($1.value, $0.key) }
            let stickiness: Double? = counts.isEmpty ? nil : Double(top?.value ?? 0) / Double(good.count)
            return Session(id: id, requests: good.count, errors: mine.count - good.count, stickiness: stickiness, topUpstream: top?.key)
        }
        let measured = sessionRows.compactMap(\.stickiness)
        let headerStickiness: Double? = measured.isEmpty ? nil : measured.reduce(0, +) / Double(measured.count)

        // Usage: what the engines said they found cached, as a cross-check of the counters.
        let usage = ok.compactMap { s in s.promptTokens.map { ($0, s.cachedTokens ?? 0) } }
        let promptTokens = usage.reduce(0) { $0 + $1.0 }
        let usageRate: Double? = promptTokens > 0 && ok.contains { $0.cachedTokens != nil }
            ? Double(usage.reduce(0) { $0 + $1.1 }) / Double(promptTokens) : nil

        // Latency, in send order for first-3 / last-3.
        let ttfts = ok.compactMap { $0.ttft.map { $0 * 1000 } }
        let totals = ok.map { $0.total * 1000 }
        let ttft = Self.latency(ttfts)
        let improvement: Double? = {
            guard let f = ttft.first3, let l = ttft.last3, f > 0, ttfts.count >= 4 else { return nil }
            return (f - l) / f
        }()

        let delta: Double? = dq > 0 ? min(1, max(0, dh / dq)) : nil
        var failures: [String] = []
        if dq <= 0 {
            failures.append("no prefix-cache queries were seen during the measured loop (are these the engines behind the gateway?)")
        }
        let errors = samples.count - ok.count
        if errors > 0 {
            failures.append("\(errors) of \(samples.count) measured request(s) failed, the first: \(samples.first { !$0.ok }?.error ?? "")")
        }
        if let m = settings.minHitRate {
            if let d = delta {
                if d < m { failures.append("delta hit rate \(Self.pct(d)) is below the minimum \(Self.pct(m))") }
            } else if dq > 0 {
                failures.append("delta hit rate could not be measured (minimum \(Self.pct(m)))")
            }
        }
        if let m = settings.minStickiness {
            // One session: the header if the gateway sends it, else the engines' shares. Several
            // sessions may rightly spread over engines, so only the header can tell.
            let s = headerStickiness ?? (settings.sessions == 1 ? metricsStickiness : nil)
            if let s {
                if s < m { failures.append("stickiness \(Self.pct(s)) is below the minimum \(Self.pct(m))") }
            } else {
                failures.append("stickiness could not be measured (no upstream header\(settings.sessions == 1 ? " and no engine queries" : " and several sessions")); minimum \(Self.pct(m))")
            }
        }

        self.init(
            gatewayURL: settings.gatewayURL, model: settings.model, deltaHitRate: delta,
            overallHitRate: after.queries > 0 ? after.hits / after.queries : nil, usageHitRate: usageRate,
            stickinessHeader: headerStickiness, stickinessMetrics: metricsStickiness, requests: samples.count, errors: errors,
            ttftMs: ttft, totalMs: Self.latency(totals), ttftImprovement: improvement, perEngine: engineRows, sessions: sessionRows,
            grade: Self.grade(delta), passed: failures.isEmpty, failures: failures, warnings: warnings, metricsSource: source,
            settings: Settings(settings))
    }

    /// Nearest-rank percentiles and the first/last-three means of values in send order.
    static func latency(_ inOrder: [Double]) -> Latency {
        let percentiles = Percentiles(inOrder)
        func p(_ q: Double) -> Double? { percentiles.value(at: q) }
        func mean(_ v: ArraySlice<Double>) -> Double? { v.isEmpty ? nil : v.reduce(0, +) / Double(v.count) }
        return Latency(p50: p(0.5), p90: p(0.9), p99: p(0.99), first3: mean(inOrder.prefix(3)), last3: mean(inOrder.suffix(3)))
    }
}

extension ValidationReport.Settings {
    init(_ s: ValidationSettings) {
        self.init(
            host: s.host, warmupCount: s.warmupCount, requests: s.requests, sleepSeconds: s.sleepSeconds, maxTokens: s.maxTokens,
            sessionID: s.sessionID, sessions: s.sessions, distinctPrompts: s.distinctPrompts, promptCharacters: s.prompt.count,
            reset: s.reset, blockSize: s.blockSize, minHitRate: s.minHitRate, minStickiness: s.minStickiness,
            metricsURLs: s.metricsURLs, prometheusURL: s.prometheusURL, namespace: s.kubernetes?.namespace,
            selector: s.kubernetes?.selector)
    }
}
