import AsyncHTTPClient
import Foundation
import KVRouteDataLayer
import Logging

/// Where the validator's progress goes: a terminal, a CI log, or nowhere (the demo).
public protocol ValidationOutput: Sendable {
    /// A step starts or reports a result.
    func step(_ line: String)
    /// A loop advanced: `done` of `total`.
    func progress(_ label: String, done: Int, total: Int)
    func warning(_ line: String)
}

/// Prints step lines; in a terminal a progress bar redrawn in place, in a log one line
/// every tenth of the loop.
public struct ConsoleOutput: ValidationOutput {
    let tty: Bool
    public init(tty: Bool = isatty(STDOUT_FILENO) != 0) { self.tty = tty }

    public func step(_ line: String) { print((tty ? "\r\u{1B}[K" : "") + "==> " + line) }
    public func warning(_ line: String) { print((tty ? "\r\u{1B}[K" : "") + "    warning: " + line) }
    public func progress(_ label: String, done: Int, total: Int) {
        if tty {
            let width = 30, filled = total == 0 ? width : width * done / total
            print("\r\u{1B}[K    \(label) [" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] \(done)/\(total)", terminator: done == total ? "\n" : "")
            fflush(nil)
        } else if done == total || (total >= 10 && done % max(1, total / 10) == 0) {
            print("    \(label) \(done)/\(total)")
        }
    }
}

/// Prints nothing.
public struct SilentOutput: ValidationOutput {
    public init() {}
    public func step(_ line: String) {}
    public func progress(_ label: String, done: Int, total: Int) {}
    public func warning(_ line: String) {}
}

/// The seed's cache-hit validation: verify engines, optionally reset them, check the
/// gateway, warm up, take baselines, run the measured loop, and compute hit rate,
/// stickiness and TTFT improvement.
public struct Validator: Sendable {
    public let settings: ValidationSettings
    let client: HTTPClient
    let output: any ValidationOutput
    let environment: [String: String]

    public init(settings: ValidationSettings, client: HTTPClient, output: any ValidationOutput = ConsoleOutput(),
                environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.settings = settings
        self.client = client
        self.output = output
        self.environment = environment
    }

    public func run() async throws -> ValidationReport {
        guard settings.requests >= 1 else { throw ValidationFailure(.usage, "--requests must be at least 1") }
        guard settings.warmupCount >= 0, settings.sleepSeconds >= 0, settings.maxTokens >= 1, settings.sessions >= 1 else {
            throw ValidationFailure(.usage, "--warmup-count, --sleep-seconds must be ≥ 0 and --max-tokens, --sessions ≥ 1")
        }
        var warnings: [String] = []
        func warn(_ w: String) { warnings.append(w); output.warning(w) }
        let probe = EngineProbe(client: client)

        // Engines: from URLs, or from Kubernetes.
        var kube: KubernetesClient?
        var kubeHTTP: HTTPClient?
        defer { if let kubeHTTP { Task { try? await kubeHTTP.shutdown() } } }
        var engines: [EngineTarget]
        if let k = settings.kubernetes {
            let (c, http) = try KubernetesClient.make(k, environment: environment)
            kube = c
            kubeHTTP = http
            output.step("discover: pods in \(k.namespace) with \(k.selector)")
            engines = try await c.engines()
        } else {
            engines = try settings.metricsURLs.map(Self.target)
        }
        if engines.isEmpty && settings.prometheusURL == nil {
            throw ValidationFailure(.usage, settings.kubernetes == nil ? "no engine metrics: pass --metrics-urls, --namespace or --prometheus-url" : "no ready pods match \(settings.kubernetes!.selector)")
        }

        // 1. Verify.
        output.step("verify: \(engines.count) engine(s)")
        var anyCounters = false
        for e in engines {
            let m: EngineMetricsSnapshot
            do { m = try await probe.metrics(e) } catch let f as ValidationFailure { throw f } catch {
                throw ValidationFailure(.metrics, "engine \(e.address) is unreachable: \(error)")
            }
            if let b = m.blockSize, b != settings.blockSize {
                warn("\(e.name ?? e.address): block size \(b), expected \(settings.blockSize)")
            }
            if m.blockSize == nil { warn("\(e.name ?? e.address): no vllm:cache_config_info; cannot check the block size") }
            if m.prefixCachingDisabled { warn("\(e.name ?? e.address): prefix caching is off (enable_prefix_caching=False); hit rates will be 0") }
            anyCounters = anyCounters || m.hasPrefixCounters
            if !m.hasPrefixCounters { warn("\(e.name ?? e.address): no vllm:prefix_cache_queries_total/hits_total; is this a vLLM engine with prefix caching?") }
        }
        if !engines.isEmpty && !anyCounters && settings.prometheusURL == nil {
            throw ValidationFailure(.metrics, "no engine exports vllm:prefix_cache_queries_total; prefix-cache hit rates cannot be measured")
        }

        // 2. Reset.
        if settings.reset {
            if let kube, let deployment = settings.kubernetes?.restartDeployment {
                output.step("reset: rollout restart of deployment \(deployment)")
                try await kube.restart(deployment: deployment, now: ISO8601DateFormatter().string(from: Date())) { output.step($0) }
                engines = try await kube.engines()
                try await waitReady(engines)
            } else {
                output.step("reset: POST /reset_prefix_cache on \(engines.count) engine(s)")
                for e in engines {
                    var req = HTTPClientRequest(url: e.baseURL + "/reset_prefix_cache")
                    req.method = .POST
                    do {
                        let res = try await client.execute(req, timeout: .seconds(30))
                        _ = try? await res.body.collect(upTo: 1 << 20)
                        if res.status != .ok { warn("\(e.address): reset answered HTTP \(res.status.code)") }
                    } catch { throw ValidationFailure(.metrics, "cannot reset \(e.address): \(error)") }
                }
            }
        }

        // 3. Gateway health.
        let chat = ChatProbe(client: client, settings: settings)
        output.step("gateway: \(settings.gatewayURL)")
        if let problem = try await chat.models() { warn(problem) }
        let first = await chat.send(session: settings.sessionIDs[0], stream: true)
        if let e = first.error {
            throw ValidationFailure(.gateway, first.status == 0 ? "the gateway at \(settings.gatewayURL) is unreachable: \(e)" : "the gateway answered HTTP \(first.status): \(e)")
        }

        // 4. Warm-up, then baselines.
        if settings.warmupCount > 0 {
            output.step("warm-up: \(settings.warmupCount) request(s) per session")
            for s in settings.sessionIDs { for _ in 0..<settings.warmupCount { _ = await chat.send(session: s) } }
        }
        let source = settings.prometheusURL != nil ? "Prometheus \(settings.prometheusURL!)" : "engine /metrics"
        output.step("baseline: prefix-cache counters from \(source)")
        let before = try await totals(engines, probe)

        // 5. Measured loop.
        let n = settings.requests, sessions = settings.sessionIDs
        output.step("measure: \(n) request(s) × \(sessions.count) session(s), \(settings.sleepSeconds) s apart")
        let counter = ProgressCounter()
        let samples: [ChatSample] = await withTaskGroup(of: [ChatSample].self) { group in
            for s in sessions {
                group.addTask {
                    var out: [ChatSample] = []
                    for i in 0..<n {
                        out.append(await chat.send(session: s))
                        output.progress("requests", done: counter.increment(), total: n * sessions.count)
                        if i < n - 1 && settings.sleepSeconds > 0 { try? await Task.sleep(for: .seconds(settings.sleepSeconds)) }
                    }
                    return out
                }
            }
            var all: [ChatSample] = []
            for await part in group { all += part }
            return all
        }

        // 6. Finals and results.
        output.step("final: prefix-cache counters")
        let after = try await totals(engines, probe, waitingFor: before)
        return ValidationReport.build(settings: settings, engines: engines, before: before, after: after, samples: samples,
                                      source: source, warnings: warnings)
    }

    static func target(_ url: String) throws -> EngineTarget {
        var base = url.trimmingCharacters(in: .whitespaces)
        if base.hasSuffix("/metrics") { base.removeLast("/metrics".count) }
        if base.hasSuffix("/") { base.removeLast() }
        guard let u = URL(string: base), let host = u.host, u.scheme == "http" || u.scheme == "https" else {
            throw ValidationFailure(.usage, "bad metrics URL \(url) (expected http://host:port)")
        }
        let port = u.port ?? (u.scheme == "https" ? 443 : 80)
        return EngineTarget(address: "\(host.contains(":") ? "[\(host)]" : host):\(port)", baseURL: base, name: nil)
    }

    func waitReady(_ engines: [EngineTarget]) async throws {
        for e in engines {
            var ok = false
            for _ in 0..<600 {
                if let r = try? await client.execute(HTTPClientRequest(url: e.baseURL + "/health"), timeout: .seconds(2)), r.status == .ok { ok = true; break }
                try await Task.sleep(for: .milliseconds(500))
            }
            guard ok else { throw ValidationFailure(.metrics, "\(e.address) did not become healthy after the restart") }
        }
    }

    /// Counters now: Prometheus first when configured (waiting for it to settle past the
    /// engines' latest values), per-engine figures from `/metrics`.
    func totals(_ engines: [EngineTarget], _ probe: EngineProbe, waitingFor previous: Counters? = nil) async throws -> Counters {
        let direct = engines.isEmpty ? nil : try await probe.counters(engines)
        guard let prom = settings.prometheusURL else {
            return Counters(queries: direct!.queries, hits: direct!.hits, perEngine: direct!.perEngine)
        }
        var value = try await probe.prometheusTotals(prom)
        let deadline = Date().addingTimeInterval(settings.prometheusSettleSeconds)
        // Prometheus scrapes on its own schedule: wait until it has seen what the engines show.
        while let d = direct, value.queries < d.queries, Date() < deadline {
            try await Task.sleep(for: .milliseconds(250))
            value = try await probe.prometheusTotals(prom)
        }
        if let d = direct, value.queries < d.queries {
            output.warning("Prometheus lags the engines (\(Int(value.queries)) < \(Int(d.queries)) queries)")
        }
        return Counters(queries: value.queries, hits: value.hits, perEngine: direct?.perEngine ?? [:])
    }

    struct Counters {
        var queries: Double
        var hits: Double
        var perEngine: [String: (queries: Double, hits: Double)]
    }
}

final class ProgressCounter: @unchecked Sendable {
    private var n = 0
    private let lock = NSLock()
    func increment() -> Int { lock.lock(); defer { lock.unlock() }; n += 1; return n }
}

extension EngineMetricsSnapshot {
    var hasPrefixCounters: Bool { hasPrefixQueriesSeries }
}
