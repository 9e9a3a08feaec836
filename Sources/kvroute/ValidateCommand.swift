import ArgumentParser
import AsyncHTTPClient
import Foundation
import KVRouteDataLayer
import KVRouteValidate
import Logging

struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Measure prefix-cache hit rate and session stickiness through an OpenAI gateway in front of vLLM.",
        discussion: """
        Steps: verify the engines, reset (--reset), check the gateway, warm up and take baselines, run the \
        measured loop, report. Engines come from --metrics-urls, or from Kubernetes pods (--namespace, \
        --selector) through the API server with the in-cluster service account.

        Thresholds take fractions or percentages: --min-hit-rate 0.95, 95 and 95% are the same.

        Exit codes: 0 passed; 1 a threshold not met, a measured request failed, or no prefix-cache queries \
        seen; 2 bad flags or settings; 3 gateway unreachable or failing (wrong model included); 4 engine \
        metrics, Prometheus or the Kubernetes API unavailable or unusable. Every failure is one line on stderr.
        """
    )

    @Option(help: "Gateway base URL (required).") var gatewayURL: String?
    @Option(help: "Host header to send (an Istio gateway routes on it).") var host: String?
    @Option(help: "Model name.") var model = "meta-llama/Llama-3.2-3B-Instruct"
    @Option(help: "Warm-up requests per session before the baseline.") var warmupCount = 1
    @Option(help: "System prompt (default: a ~1,100-token management-consultant prompt).") var prompt: String?
    @Option(help: "Measured requests per session.") var requests = 30
    @Option(help: "Seconds between a session's measured requests.") var sleepSeconds = 0.8
    @Option(help: "max_tokens of each request.") var maxTokens = 16
    @Option(help: "Session id for the x-session-id and session-id headers (default: a new one per run).") var sessionID: String?
    @Option(help: "Sessions run concurrently; session k is SESSION-ID-k.") var sessions = 1
    @Flag(help: "Give each session its own prompt (separate tenants) instead of one shared prompt.") var distinctPrompts = false
    @Option(help: "Prometheus base URL: the counters come from its query API.") var prometheusURL: String?
    @Option(help: "Seconds to wait for Prometheus to scrape what the engines show.") var prometheusWaitSeconds = 90.0
    @Option(help: "Engines' base URLs or /metrics URLs, comma-separated.") var metricsUrls: String?
    @Option(help: "Kubernetes namespace of the engine pods (engines from the API server).") var namespace: String?
    @Option(help: "Label selector of the engine pods.") var selector = "llm-d.ai/role=decode"
    @Option(help: "Kubernetes API server URL (default: $KVROUTE_KUBE_API_SERVER, else in-cluster).") var apiServer: String?
    @Option(help: "Bearer token file (default: $KVROUTE_KUBE_TOKEN_FILE, else the service account's).") var tokenFile: String?
    @Option(help: "CA bundle of the API server (default: $KVROUTE_KUBE_CA_FILE, else the service account's).") var caFile: String?
    @Option(help: "Engines' /metrics port on the pods (default: annotation prometheus.io/port, else the http/metrics container port, else 8000).")
    var metricsPort: Int?
    @Option(help: "With --reset in Kubernetes: the Deployment to rollout-restart (default: the pods' owner).") var restartDeployment: String?
    @Option(help: "Seconds a rollout restart may take.") var rolloutTimeoutSeconds = 600.0
    @Flag(help: "Start from cold caches: POST /reset_prefix_cache on every engine, or a rollout restart in Kubernetes.")
    var reset = false
    @Option(help: "Expected KV block size.") var blockSize = 16
    @Option(help: "Fail below this delta hit rate (0.95, 95 or 95%).") var minHitRate: String?
    @Option(help: "Fail below this stickiness (0.99, 99 or 99%).") var minStickiness: String?
    @Option(help: "Write the JSON report to this file (docs/VALIDATE.md describes it).") var json: String?
    @OptionGroup var logging: LoggingOptions

    func settings() throws -> ValidationSettings {
        guard let gatewayURL else { throw ValidationFailure(.usage, "--gateway-url is required") }
        let engines = metricsUrls.map(ValidationSettings.parseList) ?? []
        let kubernetes = namespace.map {
            KubernetesTarget(namespace: $0, selector: selector, apiServer: apiServer, tokenFile: tokenFile, caFile: caFile,
                             metricsPort: metricsPort, restartDeployment: restartDeployment, rolloutTimeoutSeconds: rolloutTimeoutSeconds)
        }
        if namespace == nil && (restartDeployment != nil || apiServer != nil) {
            throw ValidationFailure(.usage, "--restart-deployment and --api-server need --namespace")
        }
        return ValidationSettings(
            gatewayURL: gatewayURL, host: host, model: model, warmupCount: warmupCount,
            prompt: prompt ?? ValidationSettings.consultantPrompt, requests: requests, sleepSeconds: sleepSeconds, maxTokens: maxTokens,
            sessionID: sessionID ?? ValidationSettings.generatedSessionID(), sessions: sessions, prometheusURL: prometheusURL,
            metricsURLs: engines, kubernetes: kubernetes, reset: reset, blockSize: blockSize,
            minHitRate: try minHitRate.map { try ValidationSettings.parseThreshold($0, flag: "--min-hit-rate") },
            minStickiness: try minStickiness.map { try ValidationSettings.parseThreshold($0, flag: "--min-stickiness") },
            prometheusWaitSeconds: prometheusWaitSeconds, distinctPrompts: distinctPrompts)
    }

    func run() async throws {
        let code = await execute()
        if code != 0 { throw ExitCode(code) }
    }

    /// Runs the validation and prints the report; returns the exit code.
    func execute() async -> Int32 {
        let logger = logging.bootstrap(label: "kvroute.validate")
        let client = HTTPClientService.makeClient(connectTimeout: .seconds(5))
        let outcome: Result<ValidationReport, any Error>
        do {
            let validator = Validator(settings: try settings(), client: client, logger: logger, output: ConsoleOutput())
            outcome = .success(try await validator.run())
        } catch {
            outcome = .failure(error)
        }
        try? await client.shutdown()
        switch outcome {
        case .success(let report):
            print("")
            print(report.renderTable(color: ConsoleOutput.colorAllowed))
            if let json {
                do {
                    try report.json().write(to: URL(fileURLWithPath: json))
                } catch {
                    Self.fail("cannot write the JSON report to \(json): \(ValidationFailure.describe(error))")
                    return ValidationFailure.Code.usage.exitCode
                }
            }
            return report.passed ? 0 : ValidationFailure.Code.failed.exitCode
        case .failure(let f as ValidationFailure):
            if let cause = f.cause { logger.debug("failure cause", metadata: ["cause": "\(cause)"]) }
            Self.fail(f.message)
            return f.code.exitCode
        case .failure(let error):
            Self.fail(ValidationFailure.describe(error))
            return ValidationFailure.Code.metrics.exitCode
        }
    }

    static func fail(_ message: String) {
        FileHandle.standardError.write(Data("kvroute validate: \(message)\n".utf8))
    }
}
