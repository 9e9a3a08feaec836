import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import KVRouteExtProc
import KVRouteProto
import KVRouteTestSupport
import Testing

/// deploy/kubernetes/monitoring against real peers: promtool on the PrometheusRule's rules,
/// and a real Prometheus scraping three simulated engines and `kvroute epp` (the jobs the
/// PodMonitor and ServiceMonitor name), with traffic routed by the picker over ext_proc, so
/// every alert loads and every dashboard query is shown to return data — a misspelt metric
/// or label would come back empty.
@Suite("Monitoring: alerts and dashboard against a real Prometheus", .serialized)
struct MonitoringTests {
    typealias ProcessingRequest = Envoy_Service_ExtProc_V3_ProcessingRequest
    typealias ProcessingResponse = Envoy_Service_ExtProc_V3_ProcessingResponse
    typealias BodyMode = Envoy_Extensions_Filters_Http_ExtProc_V3_ProcessingMode.BodySendMode

    static let folder = ExternalTool.repositoryRoot.appendingPathComponent("deploy/kubernetes/monitoring")
    /// The job names the monitors' relabelings set (podmonitor-engines.yaml, servicemonitor-epp.yaml).
    static let engineJob = "kvroute-engines"
    static let pickerJob = "kvroute-epp"

    // MARK: - The assets

    /// The PrometheusRule's `spec` is a Prometheus rule file: its lines, one level less indented.
    static func ruleFile() throws -> String {
        let text = try String(contentsOf: folder.appendingPathComponent("prometheusrule.yaml"), encoding: .utf8)
        let lines = text.components(separatedBy: "\n")
        let start = try #require(lines.firstIndex(of: "spec:"), "prometheusrule.yaml has no top-level spec:")
        return lines[(start + 1)...].map { $0.hasPrefix("  ") ? String($0.dropFirst(2)) : $0 }.joined(separator: "\n")
    }

    static func writeRuleFile() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kvroute-rules-\(UUID().uuidString.prefix(8)).yaml")
        try ruleFile().write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    static func alertNames() throws -> [String] {
        try ruleFile().components(separatedBy: "\n").compactMap { line in
            let t = line.trimmingCharacters(in: .whitespaces)
            return t.hasPrefix("- alert: ") ? String(t.dropFirst("- alert: ".count)) : nil
        }
    }

    static func dashboard() throws -> [String: Any] {
        let data = try Data(contentsOf: folder.appendingPathComponent("dashboards/kvroute.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// Every panel, rows' nested panels included.
    static func panels(_ d: [String: Any]) -> [[String: Any]] {
        let top = d["panels"] as? [[String: Any]] ?? []
        return top.flatMap { [$0] + ($0["panels"] as? [[String: Any]] ?? []) }
    }

    /// (panel title, PromQL) for every query target of every panel.
    static func panelQueries(_ d: [String: Any]) -> [(panel: String, expr: String)] {
        panels(d).flatMap { p in
            (p["targets"] as? [[String: Any]] ?? []).compactMap { t in
                (t["expr"] as? String).map { (p["title"] as? String ?? "?", $0) }
            }
        }
    }

    /// Grafana's variables as Grafana would expand them here: "All" for namespace and model
    /// (their all value is `.*`), the picker job for `$router` (no all value: Grafana lists
    /// the jobs found), and the rate window for 200 ms scrapes over a short test.
    static func expand(_ expr: String) -> String {
        var e = expr
        for (name, value) in [("$__rate_interval", "1m"), ("$__interval", "15s"), ("$__range", "5m"),
                              ("$namespace", ".*"), ("$model", ".*"), ("$router", "(\(pickerJob))")] {
            e = e.replacingOccurrences(of: name, with: value)
        }
        return e
    }

    // MARK: - Static checks

    @Test("promtool check rules passes on the PrometheusRule's rules", .enabled(if: ExternalTool.available("promtool")))
    func promtoolChecksRules() async throws {
        let promtool = try ExternalTool.require("promtool")
        let file = try Self.writeRuleFile()
        defer { try? FileManager.default.removeItem(at: file) }
        let r = try await ExternalTool.runAsync(promtool, ["check", "rules", file.path])
        #expect(r.status == 0, "promtool: \(r.stdout) \(r.stderr)")
        let names = try Self.alertNames()
        #expect(r.stdout.contains("SUCCESS: \(names.count) rules found"), "\(r.stdout)")
        // The issue's five alerts, by what they watch.
        for needed in ["KVRoutePrefixCacheHitRateLow", "KVRouteStickinessDrop", "KVRoutePickerDown", "KVRouteEngineMetricsStale", "KVRouteDecisionLatencyHigh"] {
            #expect(names.contains(needed), "missing alert \(needed)")
        }
    }

    @Test("the dashboard is importable Grafana JSON with the panels the issue asks for, shipped in a labelled ConfigMap")
    func dashboardShape() throws {
        let d = try Self.dashboard()
        #expect(d["uid"] as? String == "kvroute-routing")
        #expect(d["id"] == nil, "an exported id would clash on import")
        let all = Self.panels(d)
        let ids = all.compactMap { $0["id"] as? Int }
        #expect(ids.count == all.count && Set(ids).count == ids.count, "every panel needs its own id")
        let titles = Set(all.compactMap { $0["title"] as? String })
        for needed in ["Prefix-cache hit rate per engine", "Requests routed per engine", "Decision latency",
                       "Time to first token per engine", "KV-cache usage per engine", "Queue per engine"] {
            #expect(titles.contains(needed), "missing panel \(needed)")
        }
        for p in all where p["type"] as? String != "row" {
            let ds = p["datasource"] as? [String: Any]
            #expect(ds?["uid"] as? String == "${datasource}", "\(p["title"] ?? "?") must use the datasource variable")
            #expect(!(p["targets"] as? [[String: Any]] ?? []).isEmpty, "\(p["title"] ?? "?") has no query")
        }
        let variables = (d["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? []
        #expect(Set(variables.compactMap { $0["name"] as? String }) == ["datasource", "namespace", "model", "router"])

        let kustomization = try String(contentsOf: Self.folder.appendingPathComponent("kustomization.yaml"), encoding: .utf8)
        #expect(kustomization.contains("- dashboards/kvroute.json"))
        #expect(kustomization.contains("grafana_dashboard: \"1\""))
        #expect(!kustomization.contains("namespace:"), "the base stays namespace-agnostic; overlays set it")
    }

    @Test("the monitors set the job names the alerts and the Prometheus test use, on the ports the manifests name")
    func monitorsSetJobs() throws {
        func text(_ name: String) throws -> String { try String(contentsOf: Self.folder.appendingPathComponent(name), encoding: .utf8) }
        let engines = try text("podmonitor-engines.yaml"), picker = try text("servicemonitor-epp.yaml")
        #expect(engines.contains("targetLabel: job\n      replacement: \(Self.engineJob)\n"))
        #expect(picker.contains("targetLabel: job\n      replacement: \(Self.pickerJob)\n"))
        // The engine Deployments name their serving port `http`; the picker's Service `metrics`.
        #expect(engines.contains("- port: http\n"))
        #expect(picker.contains("- port: metrics\n"))
        let rules = try Self.ruleFile()
        #expect(rules.contains("job=\"\(Self.engineJob)\""))
        #expect(rules.contains("job=~\"\(Self.pickerJob)|kvroute-gateway\""))
    }

    @Test("kustomize renders the monitors, the rule and the dashboard ConfigMap",
          .enabled(if: ExternalTool.find("kustomize") != nil || ExternalTool.available("kubectl")))
    func kustomizeBuilds() async throws {
        // Standalone kustomize, else the copy built into kubectl.
        let command: [String]
        if let k = ExternalTool.find("kustomize") { command = [k, "build"] } else { command = [try ExternalTool.require("kubectl"), "kustomize"] }
        let r = try await ExternalTool.runAsync(command[0], [command[1], Self.folder.path])
        #expect(r.status == 0, "\(r.stderr)")
        for kind in ["kind: PodMonitor", "kind: ServiceMonitor", "kind: PrometheusRule", "kind: ConfigMap"] {
            #expect(r.stdout.contains(kind), "missing \(kind)")
        }
        #expect(r.stdout.contains("grafana_dashboard: \"1\""))
        #expect(r.stdout.contains("name: kvroute-grafana-dashboard\n"), "a fixed ConfigMap name (no hash suffix)")
        #expect(r.stdout.contains("\"uid\": \"kvroute-routing\""), "the ConfigMap carries the dashboard JSON")
    }

    // MARK: - Against a real Prometheus

    @Test("every alert loads healthy and every dashboard query parses and returns data from real engines and a picker",
          .enabled(if: ExternalTool.available("prometheus")), .timeLimit(.minutes(5)))
    func queriesReturnData() async throws {
        let prometheus = try ExternalTool.require("prometheus")
        let rules = try Self.writeRuleFile()
        defer { try? FileManager.default.removeItem(at: rules) }
        let dashboard = try Self.dashboard()
        let queries = Self.panelQueries(dashboard)
        #expect(queries.count >= 20)
        // Template variables: `label_values(selector, label)`; the series they read must exist.
        let variables = (dashboard["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? []
        let selectors: [(variable: String, selector: String)] = try variables.filter { $0["type"] as? String == "query" }.map { v in
            let definition = try #require(v["definition"] as? String)
            let selector = try #require(Self.labelValuesSelector(definition), "\(definition) is not label_values(selector, label)")
            return (v["name"] as? String ?? "?", selector)
        }
        let alerts = try Self.alertNames()

        try await withSimCluster(engines: 3) { _, urls in
            try await withPicker(engines: urls) { picker in
                let server = try PrometheusServer(
                    binary: prometheus, targets: urls, jobName: Self.engineJob,
                    extraJobs: [(Self.pickerJob, ["127.0.0.1:\(picker.configuration.metricsPort)"])], ruleFiles: [rules.path])
                defer { server.stop() }
                // Every target scraped before the traffic, so rates have a starting point.
                _ = try await server.waitForQuery("count(up == 1)", atLeast: 4)

                let routed = try await Self.driveTraffic(picker: picker, engines: urls)
                _ = try await server.waitForQuery("sum(kvroute_requests_routed_total{job=\"\(Self.pickerJob)\"})", atLeast: Double(routed))
                _ = try await server.waitForQuery("sum(vllm:request_success_total{job=\"\(Self.engineJob)\"})", atLeast: Double(routed))

                // Dashboard panels: each query parses (instant and range) and has a value.
                for (panel, expr) in queries {
                    let q = Self.expand(expr)
                    let result = try await Self.query(server.url, q)
                    #expect(result.error == nil, "\(panel): \(q) → \(result.error ?? "")")
                    #expect(!result.values.isEmpty, "\(panel): \(q) returned no series")
                    #expect(result.values.contains { $0.isFinite }, "\(panel): \(q) returned only \(result.values)")
                    let range = try await Self.query(server.url, q, range: true)
                    #expect(range.error == nil, "\(panel) as a range query: \(range.error ?? "")")
                }
                for (variable, selector) in selectors {
                    let r = try await Self.query(server.url, Self.expand(selector))
                    #expect(r.error == nil && !r.values.isEmpty, "variable \(variable): \(selector) → \(r.error ?? "no series")")
                }

                // Alerts: every rule loaded and evaluated without error, and each expression
                // parses as a query on its own.
                let loaded = try await Self.waitForRulesEvaluated(server.url, count: alerts.count)
                #expect(Set(loaded.map(\.name)) == Set(alerts))
                for rule in loaded {
                    #expect(rule.health == "ok", "\(rule.name): \(rule.health) \(rule.lastError)")
                    let r = try await Self.query(server.url, rule.query)
                    #expect(r.error == nil, "\(rule.name): \(r.error ?? "")")
                }
            }
        }
    }

    // MARK: - Traffic

    /// Requests routed by the picker over ext_proc, as Envoy would send them, then served by
    /// the engine it named, with the response passed back through the stream so the
    /// picker's response-side metrics (duration, usage) move too. Returns the requests routed.
    static func driveTraffic(picker: PickerServer, engines: [String]) async throws -> Int {
        let engineSet = Set(engines.map { $0.replacingOccurrences(of: "http://", with: "") })
        let port = picker.configuration.grpcPort
        return try await withGRPCClient(transport: try .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)) { client in
            let processor = Envoy_Service_ExtProc_V3_ExternalProcessor.Client(wrapping: client)
            var routed = 0
            // Prefix-aware decisions (BUFFERED: the picker reads the body): five sessions
            // sharing a long system prompt, several turns each, spread over a few seconds so
            // Prometheus sees the counters rise between scrapes.
            for i in 0..<30 {
                let session = "session-\(i % 5)"
                let body = try Self.json(longChatBody(user: "Turn \(i / 5) of \(session): what comes next?", maxTokens: 4))
                let (dest, _) = try await Self.exchange(processor, session: session, body: body, mode: .buffered)
                let d = try #require(dest, "request \(i) was not routed")
                #expect(engineSet.contains(d))
                routed += 1
                try await Task.sleep(for: .milliseconds(60))
            }
            // Headers only (the deployed EnvoyFilter's mode): routed by consistent hash on the session.
            for i in 0..<5 {
                let (dest, _) = try await Self.exchange(processor, session: "headers-\(i)", body: try Self.json(longChatBody(maxTokens: 2)), mode: .none)
                #expect(dest != nil)
                routed += 1
            }
            // A malformed body: the picker answers 400 itself (the error panel's data).
            let (dest, responses) = try await Self.exchange(processor, session: "bad", body: "{not json", mode: .buffered)
            #expect(dest == nil)
            #expect(responses.contains { if case .immediateResponse? = $0.response { true } else { false } })
            return routed
        }
    }

    /// One request's ext_proc stream. In BUFFERED mode the body goes to the picker; in
    /// headers-only mode it only goes to the engine. Once the picker names an engine, the
    /// body is POSTed there and the engine's answer is sent back as the response phase.
    static func exchange(
        _ processor: Envoy_Service_ExtProc_V3_ExternalProcessor.Client<HTTP2ClientTransport.Posix>,
        session: String, body: String, mode: BodyMode
    ) async throws -> (destination: String?, responses: [ProcessingResponse]) {
        let (destinations, found) = AsyncStream<String?>.makeStream()
        let responses = try await processor.process(requestProducer: { writer in
            try await writer.write(Self.requestHeaders(session: session, mode: mode))
            if mode != .none {
                var b = ProcessingRequest()
                b.requestBody.body = Data(body.utf8)
                b.requestBody.endOfStream = true
                try await writer.write(b)
            }
            var next = destinations.makeAsyncIterator()
            guard let dest = await next.next() ?? nil else { return }
            let answer = try await TestHTTP.request("http://\(dest)/v1/chat/completions", method: .POST, body: body, headers: [("x-session-id", session)])
            var h = ProcessingRequest()
            h.responseHeaders.headers.headers = Self.headerValues([(":status", "\(answer.status)"), ("content-type", "application/json")])
            try await writer.write(h)
            var b = ProcessingRequest()
            b.responseBody.body = Data(answer.body.utf8)
            b.responseBody.endOfStream = true
            try await writer.write(b)
        }, onResponse: { response in
            var out: [ProcessingResponse] = []
            var told = false
            for try await m in response.messages {
                out.append(m)
                guard !told else { continue }
                if let d = Self.destination(m) {
                    found.yield(d)
                    told = true
                } else if case .immediateResponse? = m.response {
                    found.yield(nil)
                    told = true
                }
            }
            if !told { found.yield(nil) }
            found.finish()
            return out
        })
        return (responses.lazy.compactMap(Self.destination).first, responses)
    }

    static func requestHeaders(session: String, mode: BodyMode) -> ProcessingRequest {
        var r = ProcessingRequest()
        r.requestHeaders.headers.headers = headerValues([
            (":method", "POST"), (":path", "/v1/chat/completions"), ("content-type", "application/json"), ("x-session-id", session),
        ])
        r.requestHeaders.endOfStream = false
        r.protocolConfig.requestBodyMode = mode
        r.protocolConfig.responseBodyMode = .buffered
        return r
    }

    static func headerValues(_ pairs: [(String, String)]) -> [Envoy_Config_Core_V3_HeaderValue] {
        pairs.map { k, v in
            var h = Envoy_Config_Core_V3_HeaderValue()
            h.key = k
            h.rawValue = Data(v.utf8)
            return h
        }
    }

    /// The routing answer's `x-gateway-destination-endpoint`, from the headers response
    /// (headers only) or the body response (BUFFERED).
    static func destination(_ m: ProcessingResponse) -> String? {
        let common: Envoy_Service_ExtProc_V3_CommonResponse
        switch m.response {
        case .requestHeaders(let h)?: common = h.response
        case .requestBody(let b)?: common = b.response
        default: return nil
        }
        return common.headerMutation.setHeaders.first { $0.header.key == ExtProcStream.destinationHeader }
            .map { String(decoding: $0.header.rawValue, as: UTF8.self) }
    }

    static func json(_ object: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    // MARK: - Prometheus HTTP API

    struct QueryResult {
        var error: String?
        var values: [Double] = []
    }

    /// An instant query at now (or a range query over the last minute): the error Prometheus
    /// gave, or the values of every series (the last point of each, for a range).
    static func query(_ base: String, _ promql: String, range: Bool = false) async throws -> QueryResult {
        var comps = URLComponents(string: base + (range ? "/api/v1/query_range" : "/api/v1/query"))!
        var items = [URLQueryItem(name: "query", value: promql)]
        if range {
            let now = Date().timeIntervalSince1970
            items += [URLQueryItem(name: "start", value: String(now - 60)), URLQueryItem(name: "end", value: String(now)), URLQueryItem(name: "step", value: "1")]
        }
        comps.queryItems = items
        // URLComponents leaves '+' alone, which a query string reads as a space.
        comps.percentEncodedQuery = comps.percentEncodedQuery?.replacingOccurrences(of: "+", with: "%2B")
        let r = try await TestHTTP.request(comps.url!.absoluteString, contentType: nil)
        guard let json = r.json else { return QueryResult(error: "HTTP \(r.status): \(r.body.prefix(300))") }
        guard json["status"] as? String == "success" else {
            return QueryResult(error: "\(json["errorType"] ?? "") \(json["error"] ?? r.body.prefix(300))")
        }
        let data = json["data"] as? [String: Any] ?? [:]
        func number(_ pair: Any?) -> Double? { ((pair as? [Any])?.last as? String).flatMap(Double.init) }
        var values: [Double] = []
        switch data["result"] {
        case let series as [[String: Any]]:
            for s in series {
                if let v = number(s["value"]) { values.append(v) }
                if let points = s["values"] as? [Any], let v = number(points.last) { values.append(v) }
            }
        case let scalar as [Any]:
            if let v = number(scalar) { values.append(v) }
        default:
            break
        }
        return QueryResult(values: values)
    }

    struct LoadedRule {
        var name: String
        var query: String
        var health: String
        var lastError: String
    }

    /// The rules Prometheus loaded, once each has been evaluated at least once.
    static func waitForRulesEvaluated(_ base: String, count: Int) async throws -> [LoadedRule] {
        var rules: [LoadedRule] = []
        for _ in 0..<100 {
            let r = try await TestHTTP.request(base + "/api/v1/rules", contentType: nil)
            let groups = ((r.json?["data"] as? [String: Any])?["groups"] as? [[String: Any]]) ?? []
            rules = groups.flatMap { ($0["rules"] as? [[String: Any]]) ?? [] }.map {
                LoadedRule(name: $0["name"] as? String ?? "", query: $0["query"] as? String ?? "",
                           health: $0["health"] as? String ?? "", lastError: $0["lastError"] as? String ?? "")
            }
            if rules.count >= count, rules.allSatisfy({ $0.health != "unknown" }) { return rules }
            try await Task.sleep(for: .milliseconds(200))
        }
        return rules
    }

    /// `label_values(selector, label)` → `selector`.
    static func labelValuesSelector(_ definition: String) -> String? {
        guard definition.hasPrefix("label_values("), definition.hasSuffix(")"),
              let comma = definition.lastIndex(of: ",") else { return nil }
        return String(definition[definition.index(definition.startIndex, offsetBy: "label_values(".count)..<comma])
    }
}
