import AsyncHTTPClient
import Foundation
import KVRouteTestSupport
import Synchronization
@testable import KVRouteValidate

/// Output that keeps every line, for assertions on the steps a run reported.
final class CollectingOutput: ValidationOutput {
    private let lines = Mutex<[String]>([])
    private let progressCalls = Mutex<[(String, Int, Int)]>([])

    func step(_ line: String) { lines.withLock { $0.append(line) } }
    func detail(_ line: String) { lines.withLock { $0.append("  " + line) } }
    func warning(_ line: String) { lines.withLock { $0.append("warning: " + line) } }
    func progress(_ label: String, done: Int, total: Int) { progressCalls.withLock { $0.append((label, done, total)) } }

    var all: [String] { lines.withLock { $0 } }
    var steps: [String] { all.filter { !$0.hasPrefix(" ") && !$0.hasPrefix("warning: ") } }
    var progress: [(String, Int, Int)] { progressCalls.withLock { $0 } }
}

/// The cache-hit ramp, shortened for tests: 1 warm-up, `requests` requests 0.01 s apart.
func rampSettings(gateway: String, metrics: [String], requests: Int = 20) -> ValidationSettings {
    ValidationSettings(gatewayURL: gateway, warmupCount: 1, requests: requests, sleepSeconds: 0.01, sessionID: "test-session",
                       metricsURLs: metrics, reset: true, prometheusWaitSeconds: 30)
}

/// One client for every test run, connecting with a short timeout so unreachable peers
/// fail quickly (the client retries refused connections until the connect timeout).
let testClient: HTTPClient = {
    var config = HTTPClient.Configuration()
    config.timeout = .init(connect: .seconds(1))
    return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
}()

func validate(_ s: ValidationSettings, environment: [String: String] = [:]) async throws -> (ValidationReport, CollectingOutput) {
    let out = CollectingOutput()
    let report = try await Validator(settings: s, client: testClient, output: out, environment: environment).run()
    return (report, out)
}

/// The exit code `kvroute validate` ends with for these settings, and the one-line reason.
func outcome(_ s: ValidationSettings, environment: [String: String] = [:]) async -> (code: Int32, reason: String) {
    do {
        let (r, _) = try await validate(s, environment: environment)
        return (r.passed ? 0 : 1, r.failures.joined(separator: "; "))
    } catch let f as ValidationFailure {
        return (f.code.exitCode, f.message)
    } catch {
        return (99, "not a ValidationFailure: \(error)")
    }
}
