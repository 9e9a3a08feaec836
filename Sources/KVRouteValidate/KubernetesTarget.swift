/// Engines found as Kubernetes pods through the API server, with the pod's service account.
///
/// Every location the in-cluster defaults come from can be overridden (flag, then
/// environment, then the service-account default), so the same code runs in a pod, behind
/// `kubectl proxy`, and against a recorded API server in tests.
public struct KubernetesTarget: Sendable {
    public var namespace: String
    /// Label selector of the engine pods (llm-d's decode pods by default).
    public var selector: String
    /// API server base URL. nil: `$KVROUTE_KUBE_API_SERVER`, else
    /// `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`.
    public var apiServer: String?
    /// Bearer token file. nil: `$KVROUTE_KUBE_TOKEN_FILE`, else the service account's.
    /// A missing file means no token (fine behind `kubectl proxy`).
    public var tokenFile: String?
    /// CA bundle for an https API server. nil: `$KVROUTE_KUBE_CA_FILE`, else the service
    /// account's `ca.crt`, else the system roots.
    public var caFile: String?
    /// Port of the engines' `/metrics`. nil: the pod's `prometheus.io/port` annotation, else
    /// its container port named `http` or `metrics`, else 8000 (vLLM's default).
    public var metricsPort: Int?
    /// Deployment to rollout-restart for `--reset`. nil: the Deployment owning the pods
    /// (pod → ReplicaSet → Deployment); pods without one are reset over HTTP instead.
    public var restartDeployment: String?
    /// How long a rollout (and the new pods' `/health`) may take.
    public var rolloutTimeoutSeconds: Double
    /// Pause between polls of the Deployment's status.
    public var pollIntervalSeconds: Double

    public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    public init(namespace: String, selector: String = "llm-d.ai/role=decode", apiServer: String? = nil,
                tokenFile: String? = nil, caFile: String? = nil, metricsPort: Int? = nil,
                restartDeployment: String? = nil, rolloutTimeoutSeconds: Double = 600, pollIntervalSeconds: Double = 2) {
        self.namespace = namespace
        self.selector = selector
        self.apiServer = apiServer
        self.tokenFile = tokenFile
        self.caFile = caFile
        self.metricsPort = metricsPort
        self.restartDeployment = restartDeployment
        self.rolloutTimeoutSeconds = rolloutTimeoutSeconds
        self.pollIntervalSeconds = pollIntervalSeconds
    }
}
