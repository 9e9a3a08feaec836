import AsyncHTTPClient
import Foundation
import Logging

/// The cache-hit validation (the Tekton task `cache-hit-test`) as one call: verify the
/// engines, optionally reset them, check the gateway, warm up, take baselines of the
/// prefix-cache counters, run the measured loop, read the counters again, and compute hit
/// rate, stickiness and TTFT.
///
/// Usable in-process: `kvroute validate` and `kvroute demo` both construct one with their
/// own HTTP client and output. `run()` throws `ValidationFailure` when a run cannot
/// complete (its code is the exit code); a completed run returns a report whose `passed`
/// says whether the thresholds were met.
public struct Validator: Sendable {
    public let settings: ValidationSettings
    let client: HTTPClient
    let logger: Logger
    let output: any ValidationOutput
    /// Process environment, read for the Kubernetes API server location and credentials.
    let environment: [String: String]

    /// - Parameters:
    ///   - client: used for every request (gateway, engines, Prometheus, Kubernetes API);
    ///     the caller owns it and shuts it down.
    ///   - logger: debug lines per request and API call; silent by default.
    ///   - output: where progress goes (`ConsoleOutput`, `SilentOutput`, or your own).
    public init(settings: ValidationSettings, client: HTTPClient, logger: Logger = Validator.silentLogger,
                output: any ValidationOutput = ConsoleOutput(),
                environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.settings = settings
        self.client = client
        self.logger = logger
        self.output = output
        self.environment = environment
    }

    /// A logger that drops everything, for callers that do not pass one.
    public static let silentLogger = Logger(label: "kvroute.validate", factory: { _ in SwiftLogNoOpLogHandler() })

    public func run() async throws -> ValidationReport {
        try settings.check()
        var warnings: [String] = []
        let kube = try settings.kubernetes.map {
            try KubernetesClient(target: $0, environment: environment, client: client, logger: logger)
        }
        let probe = EngineProbe(client: client)
        let chat = ChatProbe(client: client, settings: settings)

        var engines = try await discover(kube)
        try await verify(engines, probe, &warnings)
        if settings.reset { engines = try await reset(engines, kube, probe, &warnings) }
        try await checkGateway(chat, &warnings)
        await warmUp(chat, &warnings)

        output.step("baseline: prefix-cache counters from \(source)")
        let before = try await counters(engines, probe, since: Date(), &warnings)
        detailCounters(before)

        let samples = await measure(chat)

        output.step("final: prefix-cache counters from \(source)")
        let after = try await counters(engines, probe, since: Date(), &warnings)
        detailCounters(after)

        if engines.isEmpty {
            // Prometheus only: its instances are the engines.
            engines = after.perEngine.keys.sorted().map { EngineTarget(address: $0, baseURL: "") }
        }
        let report = ValidationReport(settings: settings, engines: engines, before: before, after: after, samples: samples,
                                      source: source, warnings: warnings)
        output.step("results: delta hit rate \(ValidationReport.pct(report.deltaHitRate)) (\(report.grade)), "
                    + "stickiness \(ValidationReport.pct(report.stickinessHeader ?? report.stickinessMetrics)): "
                    + (report.passed ? "PASS" : "FAIL"))
        return report
    }

    /// Where the counters come from, as the report names it.
    var source: String {
        if let p = settings.prometheusURL { return "Prometheus \(p)" }
        return settings.kubernetes != nil ? "pods' /metrics" : "engines' /metrics"
    }

    func detailCounters(_ c: CacheCounters) {
        output.detail("\(Self.count(c.queries)) queries, \(Self.count(c.hits)) hits (tokens) over \(c.perEngine.count) engine(s)")
    }

    static func count(_ v: Double) -> String { Int64(exactly: v.rounded()).map(String.init) ?? "\(v)" }
}
