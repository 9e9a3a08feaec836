import Foundation

/// A real Prometheus server scraping the given targets every 200 ms, on a free port with a
/// throw-away data directory.
public final class PrometheusServer: @unchecked Sendable {
    public let url: String
    let process: BackgroundProcess
    let directory: URL

    public struct Failure: Error, CustomStringConvertible { public var description: String }

    public init(binary: String, targets: [String], jobName: String = "engines", extraJobs: [(String, [String])] = [], ruleFiles: [String] = []) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvroute-prom-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        func job(_ name: String, _ t: [String]) -> String {
            let hosts = t.map { "'" + $0.replacingOccurrences(of: "http://", with: "") + "'" }.joined(separator: ", ")
            return "  - job_name: \(name)\n    scrape_interval: 200ms\n    scrape_timeout: 150ms\n    static_configs:\n      - targets: [\(hosts)]\n"
        }
        var config = "global:\n  scrape_interval: 200ms\n  evaluation_interval: 200ms\n"
        if !ruleFiles.isEmpty { config += "rule_files:\n" + ruleFiles.map { "  - \($0)\n" }.joined() }
        config += "scrape_configs:\n" + job(jobName, targets) + extraJobs.map { job($0.0, $0.1) }.joined()
        let configURL = directory.appendingPathComponent("prometheus.yml")
        try config.write(to: configURL, atomically: true, encoding: .utf8)
        let port = freePort()
        url = "http://127.0.0.1:\(port)"
        process = try BackgroundProcess(binary, [
            "--config.file=\(configURL.path)", "--storage.tsdb.path=\(directory.appendingPathComponent("data").path)",
            "--web.listen-address=127.0.0.1:\(port)", "--log.level=warn",
        ], name: "prometheus")
    }

    public func stop() {
        process.stop()
        try? FileManager.default.removeItem(at: directory)
    }

    /// The scalar value of an instant query (first series), or nil when empty.
    public func query(_ promql: String) async throws -> Double? {
        var comps = URLComponents(string: url + "/api/v1/query")!
        comps.queryItems = [URLQueryItem(name: "query", value: promql)]
        let r = try await TestHTTP.request(comps.url!.absoluteString, contentType: nil)
        guard r.status == 200, let json = r.json, (json["status"] as? String) == "success",
              let data = json["data"] as? [String: Any], let result = data["result"] as? [[String: Any]] else {
            throw Failure(description: "query \(promql) failed: \(r.status) \(r.body.prefix(300))")
        }
        guard let first = result.first, let v = first["value"] as? [Any], let s = v.last as? String else { return nil }
        return Double(s)
    }

    /// One alert as /api/v1/alerts lists it.
    public struct Alert: Sendable {
        public var name: String
        public var state: String
        public var labels: [String: String]
    }

    /// The alerts pending or firing now (GET /api/v1/alerts).
    public func alerts() async throws -> [Alert] {
        let r = try await TestHTTP.request(url + "/api/v1/alerts", contentType: nil)
        guard r.status == 200, let data = r.json?["data"] as? [String: Any], let list = data["alerts"] as? [[String: Any]] else {
            throw Failure(description: "/api/v1/alerts: \(r.status) \(r.body.prefix(300))")
        }
        return list.map { a in
            let labels = a["labels"] as? [String: String] ?? [:]
            return Alert(name: labels["alertname"] ?? "", state: a["state"] as? String ?? "", labels: labels)
        }
    }

    /// Polls /api/v1/alerts until `name` is in `state` (up to `timeout` seconds); that alert.
    public func waitForAlert(_ name: String, state: String = "firing", timeout: Double = 20) async throws -> Alert {
        let deadline = Date().addingTimeInterval(timeout)
        var seen: [Alert] = []
        while Date() < deadline {
            guard process.process.isRunning else { throw Failure(description: "prometheus exited: \(process.log.suffix(2000))") }
            seen = (try? await alerts()) ?? seen
            if let a = seen.first(where: { $0.name == name && $0.state == state }) { return a }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw Failure(description: "\(name) never became \(state) within \(timeout) s; alerts: \(seen.map { "\($0.name)=\($0.state)" })")
    }

    /// Polls a query until its value reaches `atLeast` (up to `timeout` seconds).
    public func waitForQuery(_ promql: String, atLeast: Double, timeout: Double = 30) async throws -> Double {
        let deadline = Date().addingTimeInterval(timeout)
        var last: Double?
        while Date() < deadline {
            if process.process.isRunning == false {
                throw Failure(description: "prometheus exited: \(process.log.suffix(2000))")
            }
            last = try? await query(promql)
            if let v = last, v >= atLeast {
                // One more scrape round so every target reported its latest value.
                try await Task.sleep(for: .milliseconds(600))
                return try await query(promql) ?? v
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw Failure(description: "\(promql) stayed at \(String(describing: last)); log: \(process.log.suffix(2000))")
    }
}
