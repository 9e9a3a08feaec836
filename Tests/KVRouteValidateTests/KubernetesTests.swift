import AsyncHTTPClient
import Foundation
import KVRouteTestSupport
import Synchronization
import Testing
@testable import KVRouteValidate

/// The Kubernetes path against a local server replaying recorded API-server responses
/// (Tests/fixtures/kubernetes); the pods' IPs and ports point at simulated engines.
@Suite("kvroute validate against Kubernetes", .serialized)
struct KubernetesTests {
    static let podsPath = "/api/v1/namespaces/llm-d/pods?labelSelector=llm-d.ai%2Frole%3Ddecode"
    static let deploymentPath = "/apis/apps/v1/namespaces/llm-d/deployments/llama-decode"
    static let replicaSetPath = "/apis/apps/v1/namespaces/llm-d/replicasets/llama-decode-7d9f8c6b5"

    /// A fake API server: pods before the restart, the new pods after the PATCH, the
    /// ReplicaSet (or 403 for it), and the Deployment rolling, then complete.
    static func apiServer(ports: [String], replicaSetReadable: Bool = true) throws -> FakeServer {
        func withPorts(_ s: String) -> String {
            s.replacingOccurrences(of: "PORT0", with: ports[0]).replacingOccurrences(of: "PORT1", with: ports[1])
                .replacingOccurrences(of: "PORT2", with: ports[2])
        }
        let before = withPorts(try fixture("pods.json")), after = withPorts(try fixture("pods-restarted.json"))
        let replicaSet = try fixture("replicaset.json"), forbidden = try fixture("forbidden.json")
        let patched = try fixture("deployment-patched.json"), rolling = try fixture("deployment-rolling.json")
        let complete = try fixture("deployment-complete.json")
        let restarted = RestartFlag()
        return FakeServer { method, path, n in
            switch (method, path) {
            case ("GET", podsPath): return (200, restarted.isSet ? after : before)
            case ("GET", replicaSetPath): return replicaSetReadable ? (200, replicaSet) : (403, forbidden)
            case ("PATCH", deploymentPath):
                restarted.set()
                return (200, patched)
            case ("GET", deploymentPath): return (200, n < 2 ? rolling : complete)
            default: return (404, #"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"the server could not find the requested resource","reason":"NotFound","code":404}"#)
            }
        }
    }

    static func tokenFile() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kvroute-token-\(UUID().uuidString.prefix(8))").path
        try "test-token\n".write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("pods found by selector, their Deployment derived from the owner and restarted, the rollout waited for, then validated",
          arguments: [true, false])
    func restartDerivedFromOwner(replicaSetReadable: Bool) async throws {
        try await withSimCluster(engines: 3) { _, urls in
            let ports = urls.map { String($0.split(separator: ":").last!) }
            let api = try Self.apiServer(ports: ports, replicaSetReadable: replicaSetReadable)
            let token = try Self.tokenFile()
            try await api.run { base in
                var s = rampSettings(gateway: urls[2], metrics: [])
                s.kubernetes = KubernetesTarget(namespace: "llm-d", apiServer: base, tokenFile: token, pollIntervalSeconds: 0.02)
                let (r, out) = try await validate(s)
                // The new ReplicaSet's three pods; the old, terminating one is skipped.
                #expect(r.perEngine.count == 3)
                #expect(r.perEngine.compactMap(\.name).allSatisfy { $0.hasPrefix("llama-decode-5f6d7c8b9-") }, "\(r.perEngine.map(\.name))")
                #expect(Set(r.perEngine.map(\.address)) == Set(ports.map { "127.0.0.1:\($0)" }))
                #expect((r.deltaHitRate ?? 0) >= 0.95, "\(r.renderTable())")
                #expect(r.stickinessMetrics == 1 && r.stickinessHeader == 1)
                // x-inference-pod names sim-2, not a pod: no per-engine request attribution.
                #expect(r.metricsSource == "pods' /metrics")
                #expect(out.steps.contains { $0.hasPrefix("discover: pods in namespace llm-d matching llm-d.ai/role=decode") })
                #expect(out.steps.contains("reset: rollout restart of deployment llama-decode in llm-d"))
                #expect(out.all.contains("  rollout of llama-decode: 2/3 updated, 3 ready, 4 total"))
                #expect(out.all.filter { $0.contains("rollout of llama-decode") }.count == 2, "one line per change, not per poll")

                let calls = api.recorded
                #expect(calls.allSatisfy { $0.authorization == "Bearer test-token" })
                let patch = try #require(calls.first { $0.method == "PATCH" })
                #expect(patch.path == Self.deploymentPath)
                #expect(patch.contentType == "application/strategic-merge-patch+json")
                let body = try #require(try JSONSerialization.jsonObject(with: Data(patch.body.utf8)) as? [String: Any])
                let annotations = ((((body["spec"] as? [String: Any])?["template"] as? [String: Any])?["metadata"] as? [String: Any])?["annotations"] as? [String: String])
                let stamp = try #require(annotations?["kubectl.kubernetes.io/restartedAt"])
                #expect(ISO8601DateFormatter().date(from: stamp) != nil, "RFC 3339 time, as kubectl sends")
                #expect(calls.filter { $0.method == "GET" && $0.path == Self.deploymentPath }.count == 3, "rolling, rolling, complete")
                #expect(calls.contains { $0.path == Self.replicaSetPath })
                // Pods are listed before the restart (discovery, owners) and after it.
                let podsIndex = calls.lastIndex { $0.path == Self.podsPath }!, patchIndex = calls.firstIndex { $0.method == "PATCH" }!
                #expect(podsIndex > patchIndex)
            }
        }
    }

    @Test("--restart-deployment names the Deployment; the metrics port comes from port names and the prometheus.io/port annotation")
    func namedDeploymentAndPorts() async throws {
        try await withSimCluster(engines: 3) { _, urls in
            let ports = urls.map { String($0.split(separator: ":").last!) }
            let api = try Self.apiServer(ports: ports)
            try await api.run { base in
                // Without --reset the pods are the first list's: ports from `http`, `metrics`
                // and the annotation (the third pod's containers declare 8000 and 8200).
                var s = rampSettings(gateway: urls[0], metrics: [], requests: 3)
                s.reset = false
                s.kubernetes = KubernetesTarget(namespace: "llm-d", apiServer: base, tokenFile: "/nonexistent", pollIntervalSeconds: 0.02)
                let (r, _) = try await validate(s)
                #expect(r.perEngine.map(\.address).sorted() == ports.map { "127.0.0.1:\($0)" }.sorted())
                #expect(r.perEngine.compactMap(\.name).allSatisfy { $0.hasPrefix("llama-decode-7d9f8c6b5-") })
                #expect(!api.recorded.contains { $0.method == "PATCH" })
                #expect(api.recorded.allSatisfy { $0.authorization == nil }, "no token file, no Authorization (kubectl proxy)")

                s.reset = true
                s.kubernetes?.restartDeployment = "llama-decode"
                let (r2, _) = try await validate(s)
                #expect(r2.passed, "\(r2.failures)")
                #expect(!api.recorded.contains { $0.path == Self.replicaSetPath }, "a named Deployment needs no owner lookup")
                #expect(api.recorded.filter { $0.method == "PATCH" }.count == 1)
            }
        }
    }

    @Test("the API server location and token come from KVROUTE_KUBE_* when no flag gives them")
    func environmentOverrides() async throws {
        try await withSimCluster(engines: 3) { _, urls in
            let ports = urls.map { String($0.split(separator: ":").last!) }
            let api = try Self.apiServer(ports: ports)
            let token = try Self.tokenFile()
            try await api.run { base in
                var s = rampSettings(gateway: urls[0], metrics: [], requests: 2)
                s.reset = false
                s.kubernetes = KubernetesTarget(namespace: "llm-d")
                let env = ["KVROUTE_KUBE_API_SERVER": base, "KVROUTE_KUBE_TOKEN_FILE": token, "KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"]
                let (code, reason) = await outcome(s, environment: env)
                #expect(code == 0, "\(reason)")
                #expect(api.recorded.first?.authorization == "Bearer test-token")
            }
        }
    }

    @Test("an API server refusing access is exit 4 with its message")
    func forbidden() async throws {
        let body = try fixture("forbidden.json")
        let api = FakeServer { _, _, _ in (403, body) }
        try await withSimCluster(engines: 1) { _, urls in
            try await api.run { base in
                var s = rampSettings(gateway: urls[0], metrics: [])
                s.kubernetes = KubernetesTarget(namespace: "llm-d", apiServer: base, tokenFile: "/nonexistent")
                let (code, reason) = await outcome(s)
                #expect(code == 4)
                #expect(reason.contains("HTTP 403") && reason.contains("pods is forbidden"), "\(reason)")
            }
        }
    }

    @Test("no pod matches: exit 4 naming the selector")
    func noPods() async throws {
        let api = FakeServer { _, _, _ in (200, #"{"kind":"PodList","apiVersion":"v1","items":[]}"#) }
        try await api.run { base in
            var s = rampSettings(gateway: "http://127.0.0.1:1", metrics: [])
            s.kubernetes = KubernetesTarget(namespace: "llm-d", selector: "app=vllm", apiServer: base)
            let (code, reason) = await outcome(s)
            #expect(code == 4)
            #expect(reason.contains("app=vllm"), "\(reason)")
        }
    }

    @Test("outside a cluster without --api-server: a usage error naming the fix")
    func notInCluster() async {
        var s = rampSettings(gateway: "http://127.0.0.1:1", metrics: [])
        s.kubernetes = KubernetesTarget(namespace: "llm-d")
        let (code, reason) = await outcome(s, environment: [:])
        #expect(code == 2)
        #expect(reason.contains("--api-server"))
    }

    @Test("a rollout that never completes is exit 4 after the timeout, with its last state")
    func rolloutTimeout() async throws {
        let pods = try fixture("pods.json").replacingOccurrences(of: "PORT0", with: "1").replacingOccurrences(of: "PORT1", with: "2")
            .replacingOccurrences(of: "PORT2", with: "3")
        let rolling = try fixture("deployment-rolling.json"), patched = try fixture("deployment-patched.json")
        let api = FakeServer { method, path, _ in
            if path == Self.podsPath { return (200, pods) }
            return (200, method == "PATCH" ? patched : rolling)
        }
        try await api.run { base in
            let k = KubernetesTarget(namespace: "llm-d", apiServer: base, rolloutTimeoutSeconds: 0.2, pollIntervalSeconds: 0.02)
            let client = try KubernetesClient(target: k, environment: [:], client: testClient, logger: Validator.silentLogger)
            do {
                try await client.restart(deployment: "llama-decode", at: Date()) { _ in }
                Issue.record("a rollout stuck at 2/3 completed")
            } catch let f as ValidationFailure {
                #expect(f.code == .metrics)
                #expect(f.message.contains("did not finish rolling out") && f.message.contains("2/3 updated"), "\(f.message)")
            }
        }
    }
}

/// Flips once the restart PATCH arrived, so the pod list changes as it would.
final class RestartFlag: Sendable {
    private let flag = Mutex(false)
    var isSet: Bool { flag.withLock { $0 } }
    func set() { flag.withLock { $0 = true } }
}
