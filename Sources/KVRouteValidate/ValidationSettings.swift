import Foundation

/// Everything a validation run takes: the `cache-hit-test` Tekton task's parameters
/// (gateway, host, model, warm-up, prompt, requests, sleep, max tokens, session) plus where
/// engine metrics come from and what counts as a pass.
///
/// A plain value with defaults in `init`, so the CLI, the demo and tests build one the same
/// way; flag parsing lives beside it (`ValidationSettings+Parsing.swift`), not inside it.
public struct ValidationSettings: Sendable {
    /// Base URL of the OpenAI-compatible gateway (`http://host[:port]`).
    public var gatewayURL: String
    /// Host header for the gateway: an Istio gateway routes on it.
    public var host: String?
    public var model: String
    /// Requests per session before the baseline, so the first measured request can hit.
    public var warmupCount: Int
    /// The long system prompt every request shares: what the prefix cache should keep.
    public var prompt: String
    /// Measured requests per session.
    public var requests: Int
    /// Pause between a session's measured requests (0.3 s in the cache-hit ramp).
    public var sleepSeconds: Double
    public var maxTokens: Int
    /// The session id (`x-session-id` and `session-id` headers); with several sessions,
    /// session k is `sessionID-k`.
    public var sessionID: String
    /// Sessions run concurrently, each measured for stickiness on its own.
    public var sessions: Int
    /// Prometheus base URL; when set, the prefix-cache totals come from its query API.
    public var prometheusURL: String?
    /// Engines' base URLs or full `/metrics` URLs.
    public var metricsURLs: [String]
    /// Engines as Kubernetes pods, found through the API server (instead of `metricsURLs`).
    public var kubernetes: KubernetesTarget?
    /// Start from cold caches: `POST /reset_prefix_cache`, or a rollout restart in Kubernetes.
    public var reset: Bool
    /// The KV block size the engines are expected to run with (16 in the deployed vLLM engines).
    public var blockSize: Int
    /// Minimum delta hit rate (fraction 0...1) for a pass; nil = no threshold.
    public var minHitRate: Double?
    /// Minimum stickiness (fraction 0...1) for a pass; nil = no threshold.
    public var minStickiness: Double?
    /// How long to wait for Prometheus to scrape what the engines show before reading it.
    public var prometheusWaitSeconds: Double
    /// Give every session its own prompt (a per-session first line), as separate tenants
    /// would, instead of one shared prompt.
    public var distinctPrompts: Bool
    /// The user turn sent after the system prompt.
    public var userMessage: String

    public init(
        gatewayURL: String, host: String? = nil, model: String = "meta-llama/Llama-3.2-3B-Instruct", warmupCount: Int = 1,
        prompt: String = ValidationSettings.consultantPrompt, requests: Int = 30, sleepSeconds: Double = 0.8, maxTokens: Int = 16,
        sessionID: String = ValidationSettings.generatedSessionID(), sessions: Int = 1, prometheusURL: String? = nil,
        metricsURLs: [String] = [], kubernetes: KubernetesTarget? = nil, reset: Bool = false, blockSize: Int = 16,
        minHitRate: Double? = nil, minStickiness: Double? = nil, prometheusWaitSeconds: Double = 90,
        distinctPrompts: Bool = false,
        userMessage: String = "Our churn rose from 8% to 13% in a year. What are your top recommendations, and what would you do first?"
    ) {
        self.gatewayURL = gatewayURL
        self.host = host
        self.model = model
        self.warmupCount = warmupCount
        self.prompt = prompt
        self.requests = requests
        self.sleepSeconds = sleepSeconds
        self.maxTokens = maxTokens
        self.sessionID = sessionID
        self.sessions = sessions
        self.prometheusURL = prometheusURL
        self.metricsURLs = metricsURLs
        self.kubernetes = kubernetes
        self.reset = reset
        self.blockSize = blockSize
        self.minHitRate = minHitRate
        self.minStickiness = minStickiness
        self.prometheusWaitSeconds = prometheusWaitSeconds
        self.distinctPrompts = distinctPrompts
        self.userMessage = userMessage
    }

    /// Session ids, one per concurrent session.
    public var sessionIDs: [String] {
        sessions <= 1 ? [sessionID] : (0..<sessions).map { "\(sessionID)-\($0)" }
    }

    /// The system prompt a session sends.
    public func prompt(for session: String) -> String {
        distinctPrompts ? "Client account \(session).\n\n" + prompt : prompt
    }

    /// A fresh session id per run, so a rerun never rides on a previous run's affinity.
    public static func generatedSessionID() -> String {
        "kvroute-validate-\(Int(Date().timeIntervalSince1970))-\(String(UInt16.random(in: .min ... .max), radix: 16))"
    }

    /// Rejects settings a run cannot start with, as a usage failure (exit 2).
    public func check() throws {
        func bad(_ m: String) -> ValidationFailure { ValidationFailure(.usage, m) }
        guard let url = URL(string: gatewayURL), url.host != nil, url.scheme == "http" || url.scheme == "https" else {
            throw bad("--gateway-url \(gatewayURL.isEmpty ? "is missing" : "\(gatewayURL) is not an http(s) URL")")
        }
        if let p = prometheusURL {
            guard let u = URL(string: p), u.host != nil, u.scheme == "http" || u.scheme == "https" else {
                throw bad("--prometheus-url \(p) is not an http(s) URL")
            }
        }
        guard requests >= 1 else { throw bad("--requests must be at least 1") }
        guard warmupCount >= 0 else { throw bad("--warmup-count must not be negative") }
        guard sleepSeconds >= 0, sleepSeconds.isFinite else { throw bad("--sleep-seconds must not be negative") }
        guard maxTokens >= 1 else { throw bad("--max-tokens must be at least 1") }
        guard sessions >= 1 else { throw bad("--sessions must be at least 1") }
        guard blockSize >= 1 else { throw bad("--block-size must be at least 1") }
        guard !model.isEmpty else { throw bad("--model must not be empty") }
        guard !sessionID.isEmpty else { throw bad("--session-id must not be empty") }
        guard !prompt.isEmpty else { throw bad("--prompt must not be empty") }
        for (name, v) in [("--min-hit-rate", minHitRate), ("--min-stickiness", minStickiness)] {
            if let v, !(0...1).contains(v) { throw bad("\(name) must be a fraction 0...1 or a percentage 0...100") }
        }
        if let k = kubernetes {
            guard metricsURLs.isEmpty else { throw bad("pass either --metrics-urls or --namespace, not both") }
            guard !k.namespace.isEmpty else { throw bad("--namespace must not be empty") }
            if let port = k.metricsPort, !(1...65535).contains(port) { throw bad("--metrics-port must be 1...65535") }
        }
        if kubernetes == nil && metricsURLs.isEmpty && prometheusURL == nil {
            throw bad("no engine metrics: pass --metrics-urls, --namespace (Kubernetes) or --prometheus-url")
        }
    }
}
