import Foundation
import KVRouteCore
import KVRouteTestSupport
import Testing

/// deploy/kubernetes checked offline, without a cluster: scripts/check-deploy.sh must pass on
/// the committed assets and reject each broken manifest in Tests/fixtures/deploy-broken by
/// name; the EnvoyFilter must follow the Envoy configuration the real-Envoy tests run; and
/// every `kvroute` command line the manifests hold (picker, simulated engines, Tekton
/// validation) must be one the built binary accepts, with ports, probes, config files and
/// label selectors that agree with each other.
@Suite("Deploy assets: schemas, Envoy parity, kvroute flags", .serialized)
struct DeployAssetsTests {
    static let root = ExternalTool.repositoryRoot
    static let checker = root.appendingPathComponent("scripts/check-deploy.sh").path
    static let brokenFolder = root.appendingPathComponent("Tests/fixtures/deploy-broken")
    static let kube = root.appendingPathComponent("deploy/kubernetes")

    /// The checker needs kubectl and, in .tools/venv, kubernetes-validate, jsonschema and
    /// PyYAML (scripts/install-test-tools.sh). Missing, the tests are skipped, unless
    /// KVROUTE_REQUIRE_PEERS=1: then they run and fail.
    static let checkerReady: Bool = {
        if ExternalTool.peersRequired { return true }
        guard ExternalTool.find("kubectl") != nil else { return false }
        let python = root.appendingPathComponent(".tools/venv/bin/python").path
        guard FileManager.default.isExecutableFile(atPath: python),
              let r = try? ExternalTool.run(python, ["-c", "import kubernetes_validate, jsonschema, yaml"], timeout: 60)
        else { return false }
        return r.status == 0
    }()

    static func runChecker(_ arguments: [String], environment: [String: String]? = nil) throws -> ExternalTool.Result {
        try ExternalTool.run(checker, arguments, timeout: 300, environment: environment)
    }

    /// The objects a kustomization folder (or a manifest file) renders, as JSON values.
    static func rendered(_ paths: String...) throws -> [[String: Any]] {
        let r = try runChecker(["json"] + paths.map { kube.appendingPathComponent($0).path })
        try #require(r.status == 0, "check-deploy.sh json \(paths): \(r.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
    }

    // MARK: - The checker

    @Test("check-deploy passes on the committed assets (kustomize, schemas, promtool, Envoy)", .enabled(if: checkerReady))
    func checkerPasses() throws {
        let r = try Self.runChecker([])
        #expect(r.status == 0, "\(r.stdout.suffix(4000))\n\(r.stderr.suffix(4000))")
        #expect(r.stdout.contains("check-deploy: OK"))
        for folder in ["overlays/sim", "overlays/vllm", "overlays/sim-precise", "overlays/vllm-precise", "tekton", "monitoring"] {
            #expect(r.stdout.contains("deploy/kubernetes/\(folder): "), "\(folder) was not built and validated")
        }
        #expect(r.stdout.contains("envoyfilter-kvroute.yaml: matches deploy/envoy/envoy-epp.yaml"))
        if ExternalTool.available("promtool") { #expect(r.stdout.contains("promtool check rules: PrometheusRule/")) }
        if ExternalTool.available("envoy") { #expect(r.stdout.contains("envoy --mode validate: EnvoyFilter/kvroute-epp")) }
    }

    static func brokenFixtures() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: brokenFolder.path)) ?? []
        return names.filter { $0.hasSuffix(".yaml") }.sorted()
    }

    @Test("check-deploy rejects a broken manifest and names the problem", .enabled(if: checkerReady), arguments: brokenFixtures())
    func brokenManifestIsRejected(_ name: String) throws {
        let path = Self.brokenFolder.appendingPathComponent(name).path
        let lines = try String(contentsOfFile: path, encoding: .utf8).components(separatedBy: "\n")
        let expected = lines.filter { $0.hasPrefix("# expect: ") }.map { String($0.dropFirst("# expect: ".count)) }
        try #require(!expected.isEmpty, "\(name) has no '# expect:' line")
        // A fixture only Envoy can reject (Envoy's own configuration inside an EnvoyFilter).
        if lines.contains("# needs: envoy"), !ExternalTool.available("envoy") { return }
        let r = try Self.runChecker(["validate", path])
        #expect(r.status == 1, "\(name) passed: \(r.stdout)")
        for text in expected {
            #expect(r.stderr.contains(text), "\(name): expected \(text.debugDescription) in:\n\(r.stderr)")
        }
    }

    @Test("the fixtures cover core kinds and every CRD family the assets use")
    func fixturesCoverKinds() {
        let names = Self.brokenFixtures().joined(separator: " ")
        for kind in ["inferencepool", "deployment", "task", "envoyfilter", "destinationrule", "httproute", "podmonitor"] {
            #expect(names.contains(kind), "no broken \(kind) fixture")
        }
    }

    @Test("a changed Envoy template makes the EnvoyFilter stale, and check-deploy says so", .enabled(if: checkerReady))
    func envoyFilterFollowsTemplate() throws {
        let template = try String(contentsOf: Self.root.appendingPathComponent("deploy/envoy/envoy-epp.yaml"), encoding: .utf8)
        let changed = template.replacingOccurrences(of: "failure_mode_allow: true", with: "failure_mode_allow: false")
        try #require(changed != template, "envoy-epp.yaml no longer sets failure_mode_allow: true")
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kvroute-envoy-\(UUID().uuidString.prefix(8)).yaml")
        try changed.write(to: url, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: url) }

        let same = try Self.runChecker(["envoyfilter"])
        #expect(same.status == 0, "\(same.stdout)\n\(same.stderr)")
        let stale = try Self.runChecker(["envoyfilter"], environment: ["KVROUTE_ENVOY_TEMPLATE": url.path])
        #expect(stale.status == 1)
        #expect(stale.stderr.contains("envoyfilter-kvroute.yaml: differs from what"), "\(stale.stderr)")
    }

    // MARK: - kvroute command lines

    /// One `kvroute SUBCOMMAND ...` the manifests run, and where.
    struct Invocation: CustomStringConvertible {
        var subcommand: String
        var arguments: [String]
        var place: String
        /// From a step's script: flags only, their values are shell variables.
        var fromScript = false
        var description: String { "\(place): kvroute \(subcommand)" }
    }

    /// Containers and Tekton steps that run the kvroute image: container args start with the
    /// subcommand (the image's entrypoint is kvroute); a step's script calls `kvroute SUB`.
    static func invocations(_ objects: [[String: Any]]) -> [Invocation] {
        var found: [Invocation] = []
        for o in objects {
            let kind = o["kind"] as? String ?? "?"
            let name = (o["metadata"] as? [String: Any])?["name"] as? String ?? "?"
            let spec = o["spec"] as? [String: Any] ?? [:]
            let podSpec = ((spec["template"] as? [String: Any])?["spec"] as? [String: Any]) ?? [:]
            let containers = (podSpec["containers"] as? [[String: Any]] ?? []) + (spec["steps"] as? [[String: Any]] ?? [])
            for c in containers where (c["image"] as? String ?? "").contains("kvroute") {
                let place = "\(kind)/\(name) \(c["name"] as? String ?? "?")"
                if let args = c["args"] as? [String], let sub = args.first {
                    found.append(Invocation(subcommand: sub, arguments: Array(args.dropFirst()), place: place))
                }
                if let script = c["script"] as? String {
                    let code = script.components(separatedBy: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("#") }
                        .joined(separator: "\n")
                    let tokens = code.split(whereSeparator: { " \t\n\\\"'".contains($0) }).map(String.init)
                    guard let at = tokens.firstIndex(of: "kvroute"), at + 1 < tokens.count else { continue }
                    // Every --flag in the script belongs to that call; values are shell variables.
                    found.append(Invocation(subcommand: tokens[at + 1], arguments: tokens.filter { $0.hasPrefix("--") && $0 != "--" },
                                            place: place, fromScript: true))
                }
            }
        }
        return found
    }

    /// `kvroute SUB --help`'s options: name → takes a value.
    static func acceptedFlags(_ subcommand: String) throws -> [String: Bool] {
        let r = try ExternalTool.run(try KVRouteBinary.require(), [subcommand, "--help"], timeout: 60)
        try #require(r.status == 0, "kvroute \(subcommand) --help: \(r.stderr)")
        let regex = try NSRegularExpression(pattern: #"^\s+(?:-[A-Za-z], )?(--[a-z0-9][a-z0-9-]*)( <[^>]+>)?"#, options: .anchorsMatchLines)
        var flags: [String: Bool] = [:]
        let text = r.stdout as NSString
        for m in regex.matches(in: r.stdout, range: NSRange(location: 0, length: text.length)) {
            flags[text.substring(with: m.range(at: 1))] = m.range(at: 2).location != NSNotFound
        }
        try #require(flags["--help"] != nil && flags.count > 2, "cannot read the options of kvroute \(subcommand) --help:\n\(r.stdout)")
        return flags
    }

    /// `--flag=value` / `--flag value` / `--flag` → [flag: value?]; problems for malformed ones.
    static func parse(_ arguments: [String], accepted: [String: Bool]) -> (values: [String: String], problems: [String]) {
        var values: [String: String] = [:]
        var problems: [String] = []
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            i += 1
            guard a.hasPrefix("--") else { problems.append("stray argument \(a.debugDescription)"); continue }
            let parts = a.split(separator: "=", maxSplits: 1).map(String.init)
            let flag = parts[0]
            guard let takesValue = accepted[flag] else { problems.append("unknown flag \(flag)"); continue }
            if parts.count == 2 {
                if !takesValue { problems.append("\(flag) takes no value") }
                values[flag] = parts[1]
            } else if takesValue {
                if i < arguments.count, !arguments[i].hasPrefix("--") {
                    values[flag] = arguments[i]
                    i += 1
                } else if !arguments.isEmpty {
                    problems.append("\(flag) needs a value")
                }
            } else {
                values[flag] = ""
            }
        }
        return (values, problems)
    }

    @Test("every kvroute command line in the manifests uses flags `kvroute SUB --help` lists",
          .enabled(if: checkerReady))
    func flagsAreAccepted() throws {
        let objects = try Self.rendered("overlays/sim", "overlays/vllm", "tekton")
        let calls = Self.invocations(objects)
        #expect(Set(calls.map(\.subcommand)) == ["epp", "sim", "validate"], "\(calls)")
        var accepted: [String: [String: Bool]] = [:]
        for call in calls {
            if accepted[call.subcommand] == nil { accepted[call.subcommand] = try Self.acceptedFlags(call.subcommand) }
            let flags = try #require(accepted[call.subcommand])
            if call.fromScript {
                for f in call.arguments { #expect(flags[f] != nil, "\(call): unknown flag \(f)") }
            } else {
                let (_, problems) = Self.parse(call.arguments, accepted: flags)
                #expect(problems.isEmpty, "\(call): \(problems)")
            }
        }
    }

    @Test("a misspelt flag is caught: the flag check can fail")
    func flagCheckCanFail() throws {
        let flags = try Self.acceptedFlags("epp")
        #expect(Self.parse(["--grpc-port=9002", "--metrics-port", "9090"], accepted: flags).problems.isEmpty)
        #expect(Self.parse(["--grpc-prot=9002"], accepted: flags).problems == ["unknown flag --grpc-prot"])
        #expect(Self.parse(["--fallbacks-in-header=yes"], accepted: flags).problems == ["--fallbacks-in-header takes no value"])
    }

    // MARK: - The manifests agree with each other

    static func named(_ objects: [[String: Any]], _ kind: String, _ name: String) throws -> [String: Any] {
        try #require(objects.first { $0["kind"] as? String == kind && ($0["metadata"] as? [String: Any])?["name"] as? String == name },
                     "no \(kind)/\(name)")
    }

    static func dig(_ value: Any?, _ path: String...) -> Any? {
        var v = value
        for key in path {
            if let i = Int(key), let a = v as? [Any] { v = i < a.count ? a[i] : nil } else { v = (v as? [String: Any])?[key] }
        }
        return v
    }

    static func container(_ deployment: [String: Any]) throws -> [String: Any] {
        try #require((dig(deployment, "spec", "template", "spec", "containers") as? [[String: Any]])?.first)
    }

    static func flagValues(_ container: [String: Any]) -> [String: String] {
        var values: [String: String] = [:]
        for a in (container["args"] as? [String] ?? []).dropFirst() where a.hasPrefix("--") {
            let parts = a.split(separator: "=", maxSplits: 1).map(String.init)
            values[parts[0]] = parts.count == 2 ? parts[1] : ""
        }
        return values
    }

    static func port(_ container: [String: Any], _ name: String) -> Int? {
        (container["ports"] as? [[String: Any]])?.first { $0["name"] as? String == name }?["containerPort"] as? Int
    }

    @Test("the picker: ports, probes, Service, EnvoyFilter and InferencePool agree; its config loads",
          .enabled(if: checkerReady))
    func pickerIsConsistent() throws {
        let objects = try Self.rendered("overlays/sim")
        let deployment = try Self.named(objects, "Deployment", "kvroute-epp")
        let c = try Self.container(deployment)
        let flags = Self.flagValues(c)
        let grpc = Int(flags["--grpc-port"] ?? "9002"), health = Int(flags["--health-port"] ?? "9003")
        let metrics = Int(flags["--metrics-port"] ?? "9090")
        #expect(grpc == 9002 && health == 9003 && metrics == 9090)
        #expect(Self.port(c, "grpc-ext-proc") == grpc)
        #expect(Self.port(c, "grpc-health") == health)
        #expect(Self.port(c, "metrics") == metrics)
        for probe in ["livenessProbe", "readinessProbe"] {
            #expect(Self.dig(c, probe, "grpc", "port") as? Int == health, "\(probe) is not a gRPC probe on the health port")
        }

        let service = try Self.named(objects, "Service", "kvroute-epp")
        let servicePorts = Self.dig(service, "spec", "ports") as? [[String: Any]] ?? []
        let extProc = try #require(servicePorts.first { $0["port"] as? Int == grpc })
        #expect(extProc["appProtocol"] as? String == "http2")
        #expect(servicePorts.contains { $0["name"] as? String == "metrics" && $0["port"] as? Int == metrics })

        // Envoy reaches the picker at <service>.<namespace>:grpc, health-checked on the health port.
        let namespace = try #require(Self.dig(service, "metadata", "namespace") as? String)
        let envoyFilter = try Self.named(objects, "EnvoyFilter", "kvroute-epp")
        let endpoint = Self.dig(envoyFilter, "spec", "configPatches", "0", "patch", "value", "load_assignment", "endpoints", "0", "lb_endpoints", "0", "endpoint")
        #expect(Self.dig(endpoint, "address", "socket_address", "address") as? String == "kvroute-epp.\(namespace).svc.cluster.local")
        #expect(Self.dig(endpoint, "address", "socket_address", "port_value") as? Int == grpc)
        #expect(Self.dig(endpoint, "health_check_config", "port_value") as? Int == health)

        let pool = try Self.named(objects, "InferencePool", "llama-decode")
        #expect(Self.dig(pool, "spec", "endpointPickerRef", "name") as? String == "kvroute-epp")
        #expect(Self.dig(pool, "spec", "endpointPickerRef", "port", "number") as? Int == grpc)

        // --config names a key of the mounted ConfigMap, and that EndpointPickerConfig loads.
        let configPath = try #require(flags["--config"])
        let mounts = c["volumeMounts"] as? [[String: Any]] ?? []
        let mount = try #require(mounts.first { configPath.hasPrefix(($0["mountPath"] as? String ?? "?") + "/") })
        let volumes = Self.dig(deployment, "spec", "template", "spec", "volumes") as? [[String: Any]] ?? []
        let volume = try #require(volumes.first { $0["name"] as? String == mount["name"] as? String })
        let configMapName = try #require(Self.dig(volume, "configMap", "name") as? String)
        let configMap = try Self.named(objects, "ConfigMap", configMapName)
        let key = String(configPath.dropFirst((mount["mountPath"] as? String ?? "").count + 1))
        let yaml = try #require(Self.dig(configMap, "data", key) as? String, "ConfigMap \(configMapName) has no key \(key)")
        // The comment in epp-config.yaml says it is kvroute's own profile, written out.
        func summary(_ c: EndpointPickerConfig) -> [String] {
            let p = c.primaryProfile
            return p.filters.map(\.type) + p.scorers.map { "\($0.scorer.type)×\($0.weight)" } + [p.picker.type]
        }
        let config = try EndpointPickerConfig.load(yaml: yaml)
        #expect(summary(config) == summary(try EndpointPickerConfig.load(yaml: EndpointPickerConfig.kvrouteDefaultYAML)))
    }

    @Test("engines: both variants carry the labels the pool, Services, monitors and validator select",
          .enabled(if: checkerReady))
    func enginesAreConsistent() throws {
        for overlay in ["overlays/sim", "overlays/vllm"] {
            let objects = try Self.rendered(overlay)
            let deployment = try Self.named(objects, "Deployment", "llama-decode")
            let labels = Self.dig(deployment, "spec", "template", "metadata", "labels") as? [String: String] ?? [:]
            let c = try Self.container(deployment)
            let http = try #require(Self.port(c, "http"), "\(overlay): engines have no port named http")
            #expect(http == 8000)
            #expect(labels["llm-d.ai/role"] == "decode", "\(overlay): kvroute validate's default --selector")
            let env = c["env"] as? [[String: Any]] ?? []
            #expect(env.contains { $0["name"] as? String == "PYTHONHASHSEED" && $0["value"] as? String != nil }, "\(overlay)")

            let pool = try Self.named(objects, "InferencePool", "llama-decode")
            let poolLabels = Self.dig(pool, "spec", "selector", "matchLabels") as? [String: String] ?? [:]
            #expect(poolLabels.allSatisfy { labels[$0.key] == $0.value }, "\(overlay): the InferencePool selects no engine")
            #expect(Self.dig(pool, "spec", "targetPorts", "0", "number") as? Int == http)
            for name in ["llama-decode", "llama-decode-engines"] {
                let service = try Self.named(objects, "Service", name)
                let selector = Self.dig(service, "spec", "selector") as? [String: String] ?? [:]
                #expect(!selector.isEmpty && selector.allSatisfy { labels[$0.key] == $0.value }, "\(overlay): Service \(name) selects no engine")
            }
            #expect(Self.dig(try Self.named(objects, "Service", "llama-decode-engines"), "spec", "clusterIP") as? String == "None")
            let destinationRule = try Self.named(objects, "DestinationRule", "llama-decode")
            #expect(Self.dig(destinationRule, "spec", "trafficPolicy", "loadBalancer", "consistentHash", "httpHeaderName") as? String == "x-session-id")
            #expect(Self.dig(destinationRule, "spec", "trafficPolicy", "loadBalancer", "consistentHash", "ringHash", "minimumRingSize") as? Int == 4096)

            // The picker discovers engines through the headless Service on the engines' port.
            let picker = Self.flagValues(try Self.container(try Self.named(objects, "Deployment", "kvroute-epp")))
            #expect(picker["--endpoints"] == "http://llama-decode-engines:\(http)")
            if overlay.hasSuffix("sim") {
                let sim = Self.flagValues(c)
                #expect(sim["--port"] == "\(http)" && sim["--host"] == "0.0.0.0")
            } else {
                let args = c["args"] as? [String] ?? []
                #expect(args.contains("--block-size=16") && args.contains("--enable-prefix-caching"))
                #expect((c["command"] as? [String])?.last == "meta-llama/Llama-3.2-3B-Instruct")
            }
        }
    }

    /// Tekton parameters `[{name, value|default}]` → [name: value].
    static func parameters(_ list: Any?, _ field: String) -> [String: String] {
        var out: [String: String] = [:]
        for p in list as? [[String: Any]] ?? [] {
            if let name = p["name"] as? String { out[name] = p[field] as? String ?? "" }
        }
        return out
    }

    @Test("Tekton: the cache-hit ramp run, and Tasks whose defaults match the stack", .enabled(if: checkerReady))
    func tektonRuns() throws {
        let ramp = try Self.rendered("tekton/runs/cache-ramp-pipelinerun.yaml")[0]
        let params = Self.parameters(Self.dig(ramp, "spec", "params"), "value")
        #expect(params["warmup-count"] == "1" && params["requests"] == "80" && params["sleep-seconds"] == "0.3")
        #expect(Self.dig(ramp, "spec", "taskRunTemplate", "serviceAccountName") as? String == "kvroute-cache-test")

        let objects = try Self.rendered("tekton")
        let pipeline = try Self.named(objects, "Pipeline", "cache-hit-pipeline")
        let tasks = (Self.dig(pipeline, "spec", "tasks") as? [[String: Any]] ?? []).compactMap { Self.dig($0, "taskRef", "name") as? String }
        #expect(tasks == ["cache-pod-restart", "cache-hit-test"])
        let test = try Self.named(objects, "Task", "cache-hit-test")
        let defaults = Self.parameters(Self.dig(test, "spec", "params"), "default")
        #expect(defaults["gateway-url"] == "http://llm-d-infra-inference-gateway-istio")
        #expect(defaults["selector"] == "llm-d.ai/role=decode")
        let restart = try Self.named(objects, "Task", "cache-pod-restart")
        let deploymentDefault = (Self.dig(restart, "spec", "params") as? [[String: Any]])?.first { $0["name"] as? String == "deployment" }?["default"]
        #expect(deploymentDefault as? String == "llama-decode")
        let role = try Self.named(objects, "Role", "kvroute-cache-test")
        let rules = Self.dig(role, "rules") as? [[String: Any]] ?? []
        #expect(rules.contains { ($0["resources"] as? [String] ?? []).contains("deployments") && ($0["verbs"] as? [String] ?? []).contains("patch") })
    }
}
