import ArgumentParser
import AsyncHTTPClient
import Foundation
import KVRouteDataLayer
import KVRouteValidate

struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Measure prefix-cache hit rate and session stickiness through any OpenAI gateway in front of vLLM.",
        discussion: """
        Exit codes: 0 passed; 1 thresholds not met or no prefix-cache queries seen; 2 bad flags;
        3 gateway unreachable or failing; 4 engine metrics, Prometheus or the Kubernetes API unavailable.
        """
    )

    @Option(help: "Gateway base URL.") var gatewayURL: String
    @Option(help: "Host header to send (an Istio gateway routes on it).") var host: String?
    @Option(help: "Model name.") var model = "meta-llama/Llama-3.2-3B-Instruct"
    @Option(help: "Warm-up requests per session before the baseline.") var warmupCount = 1
    @Option(help: "System prompt (default: a ~1,100-token consultant prompt).") var prompt: String?
    @Option(help: "Measured requests per session.") var requests = 30
    @Option(help: "Seconds between measured requests.") var sleepSeconds = 0.8
    @Option(help: "max_tokens of each request.") var maxTokens = 16
    @Option(help: "Session id (x-session-id and session-id headers).") var sessionID = "cache-test-\(Int(Date().timeIntervalSince1970))"
    @Option(help: "Sessions run concurrently (session k is SESSION-ID-k).") var sessions = 1
    @Option(help: "Prometheus base URL; counters come from its query API first.") var prometheusURL: String?
    @Option(help: "Engine base URLs (or /metrics URLs), comma-separated.") var metricsUrls: String?
    @Option(help: "Kubernetes namespace of the engine pods (uses the in-cluster service account).") var namespace: String?
    @Option(help: "Label selector of the engine pods.") var selector = "llm-d.ai/role=decode"
    @Option(help: "Kubernetes API server URL (default: from KUBERNETES_SERVICE_HOST/PORT).") var apiServer: String?
    @Option(help: "Service-account token file.") var tokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    @Option(help: "Cluster CA file.") var caFile = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    @Option(help: "Engine metrics port on the pods (default: the pod's http/metrics container port, else 8000).") var metricsPort: Int?
    @Option(help: "With --reset in Kubernetes: the Deployment to rollout-restart.") var restartDeployment: String?
    @Flag(help: "Start from cold caches: reset every engine's prefix cache (or restart the Deployment).") var reset = false
    @Option(help: "Expected KV block size.") var blockSize = 16
    @Option(help: "Fail below this delta hit rate (0.95 or 95).") var minHitRate: Double?
    @Option(help: "Fail below this stickiness (0.99 or 99).") var minStickiness: Double?
    @Flag(help: "Give each session its own prompt (separate tenants) instead of one shared prompt.") var distinctPrompts = false
    @Option(help: "Write the JSON report to this file.") var json: String?

    static func fraction(_ v: Double?) -> Double? { v.map { $0 > 1 ? $0 / 100 : $0 } }

    func settings() -> ValidationSettings {
        var s = ValidationSettings(
            gatewayURL: gatewayURL, host: host, model: model, warmupCount: warmupCount, prompt: prompt ?? ValidationSettings.consultantPrompt,
            requests: requests, sleepSeconds: sleepSeconds, maxTokens: maxTokens, sessionID: sessionID, sessions: sessions,
            prometheusURL: prometheusURL, metricsURLs: metricsUrls.map { $0.split(separator: ",").map(String.init) } ?? [],
            kubernetes: namespace.map {
                KubernetesTarget(namespace: $0, selector: selector, apiServer: apiServer, tokenFile: tokenFile, caFile: caFile,
                                 metricsPort: metricsPort, restartDeployment: restartDeployment)
            },
            reset: reset, blockSize: blockSize, minHitRate: Self.fraction(minHitRate), minStickiness: Self.fraction(minStickiness))
        s.distinctPrompts = distinctPrompts
        return s
    }

    func run() async throws {
        let client = HTTPClientService.makeClient(connectTimeout: .seconds(5))
        let outcome: Result<ValidationReport, any Error>
        do { outcome = .success(try await Validator(settings: settings(), client: client).run()) } catch { outcome = .failure(error) }
        try? await client.shutdown()
        switch outcome {
        case .success(let report):
            print(report.renderTable())
            if let json {
                do { try report.json().write(to: URL(fileURLWithPath: json)) } catch {
                    FileHandle.standardError.write(Data("kvroute validate: cannot write \(json): \(error)\n".utf8))
                    throw ExitCode(2)
                }
            }
            if !report.passed { throw ExitCode(1) }
        case .failure(let error as ValidationFailure):
            FileHandle.standardError.write(Data("kvroute validate: \(error.message)\n".utf8))
            throw ExitCode(error.code.exitCode)
        case .failure(let error):
            FileHandle.standardError.write(Data("kvroute validate: \(error)\n".utf8))
            throw ExitCode(4)
        }
    }
}
