import ArgumentParser
import Foundation
import KVRouteRouting
import Logging
import OTel
import ServiceLifecycle

/// Request spans over OTLP, off unless an endpoint is given: `--otlp-endpoint`, or the
/// OpenTelemetry environment (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`;
/// `OTEL_EXPORTER_OTLP_PROTOCOL` picks http/protobuf, http/json or grpc; `OTEL_SERVICE_NAME`
/// and the other `OTEL_*` variables apply as the specification says). Only traces are exported.
struct TracingOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Export one span per request (the routing decision, the engine that served, the outcome) to this OTLP collector, e.g. http://127.0.0.1:4318 (or env OTEL_EXPORTER_OTLP_ENDPOINT). Off without it.",
        valueName: "url")) var otlpEndpoint: String?

    /// The exporter's Service when tracing is on (the tracer is bootstrapped and front doors
    /// make spans from then on), else nil.
    func bootstrap(serviceName: String, logger: Logger) throws -> (any Service)? {
        var environment = ProcessInfo.processInfo.environment
        if let otlpEndpoint { environment["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlpEndpoint }
        guard environment["OTEL_EXPORTER_OTLP_ENDPOINT"] != nil || environment["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] != nil else { return nil }
        var configuration = OTel.Configuration.default
        configuration.serviceName = serviceName
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        configuration.traces.enabled = true
        configuration.traces.exporter = .otlp
        configuration.traces.otlpExporter.protocol = .httpProtobuf
        configuration.diagnosticLogger = .custom(logger)
        configuration.diagnosticLogLevel = .warning
        let service: any Service
        do {
            service = try OTel.bootstrap(configuration: configuration, environment: environment)
        } catch {
            throw ValidationError("--otlp-endpoint: \(error)")
        }
        RequestTracing.enable()
        logger.info("exporting request spans", metadata: [
            "otlp_endpoint": "\(environment["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] ?? environment["OTEL_EXPORTER_OTLP_ENDPOINT"] ?? "")"])
        return service
    }
}
