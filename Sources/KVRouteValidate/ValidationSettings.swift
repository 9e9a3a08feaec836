/// Everything `kvroute validate` takes: the seed's Tekton task parameters plus where to read
/// engine metrics from.
public struct ValidationSettings: Sendable {
    public var gatewayURL: String
    /// Host header for the gateway (an Istio gateway routes on it).
    public var host: String?
    public var model: String
    public var warmupCount: Int
    public var prompt: String
    public var requests: Int
    public var sleepSeconds: Double
    public var maxTokens: Int
    public var sessionID: String
    /// Sessions run concurrently; session k uses `sessionID-k` (one session: `sessionID`).
    public var sessions: Int
    public var prometheusURL: String?
    public var metricsURLs: [String]
    public var kubernetes: KubernetesTarget?
    public var reset: Bool
    public var blockSize: Int
    public var minHitRate: Double?
    public var minStickiness: Double?
    /// How long to wait for Prometheus to catch up with the engines' counters.
    public var prometheusSettleSeconds: Double
    /// Give every session its own prompt (a per-session first line), as separate tenants
    /// would, instead of one shared prompt.
    public var distinctPrompts = false

    /// The system prompt a session sends.
    public func prompt(for session: String) -> String {
        distinctPrompts ? "Client account \(session).\n\n" + prompt : prompt
    }

    public init(
        gatewayURL: String, host: String? = nil, model: String = "meta-llama/Llama-3.2-3B-Instruct", warmupCount: Int = 1,
        prompt: String = ValidationSettings.consultantPrompt, requests: Int = 30, sleepSeconds: Double = 0.8, maxTokens: Int = 16,
        sessionID: String = "cache-test-session", sessions: Int = 1, prometheusURL: String? = nil, metricsURLs: [String] = [],
        kubernetes: KubernetesTarget? = nil, reset: Bool = false, blockSize: Int = 16, minHitRate: Double? = nil,
        minStickiness: Double? = nil, prometheusSettleSeconds: Double = 30
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
        self.prometheusSettleSeconds = prometheusSettleSeconds
    }

    /// Session ids, one per concurrent session.
    public var sessionIDs: [String] {
        sessions <= 1 ? [sessionID] : (0..<sessions).map { "\(sessionID)-\($0)" }
    }

    /// A long, realistic system prompt (≈ 1,100 tokens) like the seed's consultant prompt:
    /// long enough that prefix caching shows in the hit rate and in TTFT.
    public static let consultantPrompt: String = {
        let paragraphs = [
            "You are a senior management consultant at a global advisory firm. Your clients are executives of mid-sized and large companies in manufacturing, retail, financial services, logistics and healthcare. They come to you with problems that matter to their business: falling margins, slow growth, failed digital programmes, supply chains under strain, and organisations that no longer execute what their leaders decide.",
            "Work in a structured way. Start by restating the problem in one sentence and naming the decision the client must make. Then lay out the drivers of the problem as a tree that is mutually exclusive and collectively exhaustive, and say which branches the evidence supports. Separate facts from hypotheses, and say what data would confirm or reject each hypothesis.",
            "When you recommend, be specific. Give at most three recommendations, each with an owner, a first step that can start next week, the expected impact with a range, the cost, and the main risk with its mitigation. Prefer options that can be piloted and measured over big-bang programmes. State what you would stop doing as clearly as what you would start.",
            "Quantify wherever you can. Use simple, checkable arithmetic: revenue equals volume times price, margin equals price minus unit cost, working capital equals inventory plus receivables minus payables. Show ranges rather than false precision, and call out the assumptions that drive most of the result. If the data provided is inconsistent, say so and explain how you resolved it.",
            "Think about people and change. Every plan fails when the middle of the organisation does not understand or believe it. Describe how the change will be communicated, which incentives must move, which capabilities must be built or hired, and how progress will be tracked with a small set of leading indicators reviewed every two weeks.",
            "Be candid about trade-offs. Growth and cost reduction pull in different directions; speed and quality trade off; centralisation buys control at the price of local responsiveness. Name the trade-off the client faces, recommend a side, and explain what would make you change your mind.",
            "Write for a busy executive. Lead with the answer, then the reasoning, then the detail. Use short paragraphs and plain words. Avoid jargon, buzzwords and filler. Never invent facts, client names or numbers; when you need a number you do not have, give a reasonable benchmark range and label it as an assumption.",
            "Close every answer with the three questions you would ask the client next, ordered by how much their answers would change your recommendation, and with a one-line summary the chief executive could repeat to the board without notes.",
        ]
        return paragraphs.joined(separator: "\n\n") + "\n\n" + paragraphs.prefix(3).joined(separator: "\n\n")
    }()
}

/// Engines found as Kubernetes pods through the API server.
public struct KubernetesTarget: Sendable {
    public var namespace: String
    public var selector: String
    /// API server base URL (default: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT).
    public var apiServer: String?
    public var tokenFile: String
    public var caFile: String?
    /// Port of the engines' /metrics; nil = the pod's container port named http or metrics,
    /// else its first container port, else 8000.
    public var metricsPort: Int?
    /// Deployment to restart for `--reset` (nil: reset caches over HTTP instead).
    public var restartDeployment: String?
    public var rolloutTimeoutSeconds: Double

    public init(namespace: String, selector: String = "llm-d.ai/role=decode", apiServer: String? = nil,
                tokenFile: String = "/var/run/secrets/kubernetes.io/serviceaccount/token",
                caFile: String? = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", metricsPort: Int? = nil,
                restartDeployment: String? = nil, rolloutTimeoutSeconds: Double = 600) {
        self.namespace = namespace
        self.selector = selector
        self.apiServer = apiServer
        self.tokenFile = tokenFile
        self.caFile = caFile
        self.metricsPort = metricsPort
        self.restartDeployment = restartDeployment
        self.rolloutTimeoutSeconds = rolloutTimeoutSeconds
    }
}
