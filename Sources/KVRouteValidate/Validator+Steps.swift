import AsyncHTTPClient
import Foundation
import KVRouteDataLayer
import KVRoutePrecise
import Logging
import Synchronization

extension Validator {
    /// The engines: from `--metrics-urls`, or the serving pods matching the selector.
    func discover(_ kube: KubernetesClient?) async throws -> [EngineTarget] {
        guard let kube, let k = settings.kubernetes else {
            return try settings.metricsURLs.map { try EngineTarget(url: $0) }
        }
        output.step("discover: pods in namespace \(k.namespace) matching \(k.selector) (API server \(kube.base))")
        let engines = try await kube.engines()
        guard !engines.isEmpty else {
            throw ValidationFailure(.metrics, "no running, ready pods in namespace \(k.namespace) match \(k.selector)")
        }
        for e in engines { output.detail("\(e.label) at \(e.address)") }
        return engines
    }

    /// Step 1: every engine's `/metrics` answers, shows the expected block size and exports
    /// the prefix-cache counters; anything that would make the figures meaningless is a
    /// warning with the reason.
    func verify(_ engines: [EngineTarget], _ probe: EngineProbe, _ warnings: inout [String]) async throws {
        guard !engines.isEmpty else {
            output.step("verify: no engine URLs; the counters come from Prometheus only")
            return
        }
        output.step("verify: \(engines.count) engine(s): /metrics, block size \(settings.blockSize), prefix caching")
        var withCounters = 0
        for e in engines {
            let m = try await probe.metrics(e)
            var facts: [String] = []
            if let b = m.blockSize { facts.append("block size \(b)") }
            if let n = m.numGPUBlocks { facts.append("\(n) KV blocks") }
            facts.append(m.prefixCachingDisabled ? "prefix caching OFF" : m.hasPrefixQueriesSeries ? "prefix caching on" : "no prefix-cache counters")
            if !m.modelNames.isEmpty { facts.append("model \(m.modelNames.sorted().joined(separator: ", "))") }
            output.detail("\(e.label): " + facts.joined(separator: ", "))
            func warn(_ w: String) { warnings.append(w); output.warning(w) }
            if let b = m.blockSize, b != settings.blockSize {
                warn("engine \(e.label) runs block size \(b), not the expected \(settings.blockSize) (--block-size)")
            }
            if m.blockSize == nil {
                warn("engine \(e.label) exports no vllm:cache_config_info, so its block size and prefix caching cannot be checked")
            }
            let labels = await probe.cacheConfigLabels(e)
            for problem in HashingSettings(blockSize: settings.blockSize).mismatches(cacheConfigLabels: labels, engine: e.label) where problem.field == .hashAlgorithm {
                warn(problem.message + "; precise prefix routing from KV events needs it")
            }
            if m.prefixCachingDisabled {
                warn("engine \(e.label) has prefix caching off (vllm:cache_config_info enable_prefix_caching=\"False\"): expect no hits; start vLLM with --enable-prefix-caching")
            }
            if m.hasPrefixQueriesSeries {
                withCounters += 1
            } else {
                warn("engine \(e.label) exports no vllm:prefix_cache_queries_total/vllm:prefix_cache_hits_total: prefix caching looks off, or it is not a vLLM engine")
            }
            if !m.modelNames.isEmpty && !m.modelNames.contains(settings.model) {
                warn("engine \(e.label) serves \(m.modelNames.sorted().joined(separator: ", ")), not \(settings.model)")
            }
        }
        if withCounters == 0 && settings.prometheusURL == nil {
            throw ValidationFailure(.metrics, "no engine exports vllm:prefix_cache_queries_total (checked \(engines.count)): prefix-cache hit rates cannot be measured")
        }
    }

    /// Step 2 (`--reset`): cold caches. In Kubernetes a rollout restart of the Deployment
    /// (named, or the pods' owner) — caches and counters start from zero, as after the
    /// Tekton pipeline's `cache-pod-restart` step; otherwise `POST /reset_prefix_cache` on
    /// every engine.
    func reset(_ engines: [EngineTarget], _ kube: KubernetesClient?, _ probe: EngineProbe,
               _ warnings: inout [String]) async throws -> [EngineTarget] {
        func warn(_ w: String) { warnings.append(w); output.warning(w) }
        if let kube, let k = settings.kubernetes {
            let deployments: [String]
            if let d = k.restartDeployment { deployments = [d] } else { deployments = try await kube.owningDeployments() }
            if deployments.isEmpty {
                warn("the pods have no owning Deployment; resetting their prefix caches over HTTP instead (pass --restart-deployment to restart one)")
            } else {
                for d in deployments {
                    output.step("reset: rollout restart of deployment \(d) in \(k.namespace)")
                    try await kube.restart(deployment: d, at: Date()) { output.detail($0) }
                }
                return try await waitForPods(kube, k, probe)
            }
        }
        guard !engines.isEmpty else {
            warn("--reset: no engine URLs to reset (the counters come from Prometheus only)")
            return engines
        }
        output.step("reset: POST /reset_prefix_cache on \(engines.count) engine(s)")
        for e in engines {
            if let problem = try await probe.reset(e) { warn(problem) }
        }
        return engines
    }

    /// After a rollout: the new pods, once every one answers `/health`.
    func waitForPods(_ kube: KubernetesClient, _ k: KubernetesTarget, _ probe: EngineProbe) async throws -> [EngineTarget] {
        let deadline = Date().addingTimeInterval(k.rolloutTimeoutSeconds)
        while true {
            let engines = try await kube.engines()
            var healthy = 0
            for e in engines {
                if await probe.healthy(e) { healthy += 1 }
            }
            if !engines.isEmpty && healthy == engines.count {
                output.detail("\(engines.count) pod(s) ready: " + engines.map(\.label).joined(separator: ", "))
                return engines
            }
            guard Date() < deadline else {
                throw ValidationFailure(.metrics, "after the restart only \(healthy) of \(engines.count) pod(s) answer /health within \(Int(k.rolloutTimeoutSeconds)) s")
            }
            try await Task.sleep(for: .seconds(k.pollIntervalSeconds))
        }
    }

    /// Step 3: `GET /v1/models` (a warning when the model is not listed), then one short
    /// streaming chat completion, which must work: a wrong model or a broken gateway stops
    /// the run here with the gateway's own message.
    func checkGateway(_ chat: ChatProbe, _ warnings: inout [String]) async throws {
        func warn(_ w: String) { warnings.append(w); output.warning(w) }
        output.step("gateway: \(settings.gatewayURL)\(settings.host.map { " (Host: \($0))" } ?? ""): GET /v1/models, then one chat completion")
        if let problem = try await chat.models() { warn(problem) }
        let probe = await chat.send(session: settings.sessionIDs[0], short: true)
        if let e = probe.error {
            if probe.status == 0 {
                throw ValidationFailure(.gateway, "the gateway at \(settings.gatewayURL) is unreachable: \(e)")
            }
            throw ValidationFailure(.gateway, "the gateway at \(settings.gatewayURL) cannot serve model \(settings.model): \(e)")
        }
        output.detail(String(format: "chat completion streamed in %.0f ms", probe.total * 1000) + (probe.upstream.map { " from \($0)" } ?? ""))
        if probe.upstream == nil {
            warn("the gateway's responses carry neither x-upstream-host nor x-inference-pod: stickiness comes from the engines' metrics only")
        }
    }

    /// Step 4a: warm-up requests (per session, concurrently), so the measured loop starts
    /// from a cache that holds the prompt, as in the cache-hit ramp.
    func warmUp(_ chat: ChatProbe, _ warnings: inout [String]) async {
        guard settings.warmupCount > 0 else { return }
        let sessions = settings.sessionIDs, n = settings.warmupCount
        output.step("warm-up: \(n) request(s) per session × \(sessions.count) session(s)")
        let samples = await loop(chat, label: "warm-up", count: n, sleep: 0)
        let failed = samples.filter { !$0.ok }
        if let first = failed.first {
            let w = "\(failed.count) of \(samples.count) warm-up request(s) failed: \(first.error ?? "")"
            warnings.append(w)
            output.warning(w)
        }
    }

    /// Step 5: the measured loop, every session concurrently, each request streamed and
    /// timed, `sleepSeconds` apart within a session.
    func measure(_ chat: ChatProbe) async -> [ChatSample] {
        let sessions = settings.sessionIDs
        output.step("measure: \(settings.requests) request(s) × \(sessions.count) session(s), \(settings.sleepSeconds) s apart, streaming")
        let samples = await loop(chat, label: "requests", count: settings.requests, sleep: settings.sleepSeconds)
        let failed = samples.filter { !$0.ok }.count
        output.detail("\(samples.count - failed) succeeded, \(failed) failed")
        return samples
    }

    /// `count` requests per session, sessions concurrently, reporting progress as they end.
    func loop(_ chat: ChatProbe, label: String, count: Int, sleep: Double) async -> [ChatSample] {
        let sessions = settings.sessionIDs
        let total = count * sessions.count
        let finished = Finished()
        let start = ContinuousClock.now
        let logger = self.logger, output = self.output
        return await withTaskGroup(of: [ChatSample].self) { group in
            for session in sessions {
                group.addTask {
                    var out: [ChatSample] = []
                    for i in 0..<count {
                        let s = await chat.send(session: session, index: i, loopStart: start)
                        logger.debug("\(label) request", metadata: [
                            "session": "\(session)", "index": "\(i)", "status": "\(s.status)", "upstream": "\(s.upstream ?? "-")",
                            "ttft_ms": "\(s.ttft.map { String(format: "%.1f", $0 * 1000) } ?? "-")",
                            "cached_tokens": "\(s.cachedTokens.map(String.init) ?? "-")", "error": "\(s.error ?? "-")",
                        ])
                        out.append(s)
                        output.progress(label, done: finished.next(), total: total)
                        if i < count - 1 && sleep > 0 { try? await Task.sleep(for: .seconds(sleep)) }
                    }
                    return out
                }
            }
            var all: [ChatSample] = []
            for await part in group { all += part }
            return all.sorted { ($0.sentAt, $0.session) < ($1.sentAt, $1.session) }
        }
    }

    /// Counts requests finished across concurrent sessions, for the progress display.
    final class Finished: Sendable {
        private let n = Atomic<Int>(0)
        func next() -> Int { n.add(1, ordering: .relaxed).newValue }
    }
}
