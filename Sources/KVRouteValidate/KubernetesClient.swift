import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

/// The few Kubernetes API calls the validator makes, with the pod's service account:
/// list pods by label selector, and a rollout restart of a Deployment (the same PATCH
/// `kubectl rollout restart` sends) followed by waiting for the rollout.
struct KubernetesClient: Sendable {
    let target: KubernetesTarget
    let base: String
    let token: String?
    let client: HTTPClient

    /// The client it makes (trusting the cluster CA) must be shut down by the caller.
    static func make(_ target: KubernetesTarget, environment: [String: String]) throws -> (KubernetesClient, HTTPClient) {
        let base: String
        if let s = target.apiServer { base = s.hasSuffix("/") ? String(s.dropLast()) : s } else {
            guard let host = environment["KUBERNETES_SERVICE_HOST"], let port = environment["KUBERNETES_SERVICE_PORT"] else {
                throw ValidationFailure(.usage, "not running in a cluster (KUBERNETES_SERVICE_HOST is unset); pass --api-server or --metrics-urls")
            }
            base = "https://\(host.contains(":") ? "[\(host)]" : host):\(port)"
        }
        let token = (try? String(contentsOfFile: target.tokenFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        var config = HTTPClient.Configuration()
        if base.hasPrefix("https"), let ca = target.caFile, FileManager.default.fileExists(atPath: ca) {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .file(ca)
            config.tlsConfiguration = tls
        }
        config.timeout = .init(connect: .seconds(5), read: .seconds(30))
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
        return (KubernetesClient(target: target, base: base, token: token, client: http), http)
    }

    func request(_ method: HTTPMethod, _ path: String, body: String? = nil, contentType: String = "application/json") async throws -> [String: Any] {
        var req = HTTPClientRequest(url: base + path)
        req.method = method
        if let token { req.headers.add(name: "authorization", value: "Bearer \(token)") }
        req.headers.add(name: "accept", value: "application/json")
        if let body {
            req.headers.add(name: "content-type", value: contentType)
            req.body = .bytes(ByteBuffer(string: body))
        }
        let res: HTTPClientResponse
        let data: ByteBuffer
        do {
            res = try await client.execute(req, timeout: .seconds(30))
            data = try await res.body.collect(upTo: 32 << 20)
        } catch {
            throw ValidationFailure(.metrics, "Kubernetes API \(base) unreachable: \(error)")
        }
        let json = (try? JSONSerialization.jsonObject(with: Data(data.readableBytesView))) as? [String: Any]
        guard (200..<300).contains(Int(res.status.code)) else {
            let message = (json?["message"] as? String) ?? String(buffer: data).prefix(200).description
            throw ValidationFailure(.metrics, "Kubernetes API \(method) \(path): HTTP \(res.status.code) \(message)")
        }
        guard let json else { throw ValidationFailure(.metrics, "Kubernetes API \(method) \(path): not JSON") }
        return json
    }

    /// Running, ready pods matching the selector, as engine targets.
    func engines() async throws -> [EngineTarget] {
        let selector = target.selector.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed.subtracting(CharacterSet(charactersIn: "=,&+"))) ?? target.selector
        let list = try await request(.GET, "/api/v1/namespaces/\(target.namespace)/pods?labelSelector=\(selector)")
        let items = (list["items"] as? [[String: Any]]) ?? []
        var out: [EngineTarget] = []
        for pod in items {
            let meta = pod["metadata"] as? [String: Any] ?? [:]
            let status = pod["status"] as? [String: Any] ?? [:]
            guard (status["phase"] as? String) == "Running", let ip = status["podIP"] as? String else { continue }
            if meta["deletionTimestamp"] != nil { continue }
            let conditions = status["conditions"] as? [[String: Any]] ?? []
            let ready = conditions.contains { ($0["type"] as? String) == "Ready" && ($0["status"] as? String) == "True" }
            guard ready else { continue }
            let port = target.metricsPort ?? Self.metricsPort(pod) ?? 8000
            let host = ip.contains(":") ? "[\(ip)]" : ip
            out.append(EngineTarget(address: "\(host):\(port)", baseURL: "http://\(host):\(port)", name: meta["name"] as? String))
        }
        return out.sorted { $0.address < $1.address }
    }

    /// The container port named `http` or `metrics`, else the first declared port.
    static func metricsPort(_ pod: [String: Any]) -> Int? {
        let containers = ((pod["spec"] as? [String: Any])?["containers"] as? [[String: Any]]) ?? []
        let ports = containers.flatMap { ($0["ports"] as? [[String: Any]]) ?? [] }
        if let named = ports.first(where: { ["http", "metrics"].contains($0["name"] as? String ?? "") }) {
            return named["containerPort"] as? Int
        }
        return ports.first?["containerPort"] as? Int
    }

    /// `kubectl rollout restart deployment/NAME`, then waits until the rollout completes.
    func restart(deployment: String, now: String, progress: (String) -> Void) async throws {
        let patch = #"{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"\#(now)"}}}}}"#
        let path = "/apis/apps/v1/namespaces/\(target.namespace)/deployments/\(deployment)"
        _ = try await request(.PATCH, path, body: patch, contentType: "application/strategic-merge-patch+json")
        let deadline = Date().addingTimeInterval(target.rolloutTimeoutSeconds)
        while Date() < deadline {
            let d = try await request(.GET, path)
            let spec = d["spec"] as? [String: Any] ?? [:]
            let status = d["status"] as? [String: Any] ?? [:]
            let meta = d["metadata"] as? [String: Any] ?? [:]
            let want = spec["replicas"] as? Int ?? 1
            let updated = status["updatedReplicas"] as? Int ?? 0
            let ready = status["readyReplicas"] as? Int ?? 0
            let available = status["availableReplicas"] as? Int ?? 0
            let total = status["replicas"] as? Int ?? 0
            let observed = status["observedGeneration"] as? Int ?? 0
            let generation = meta["generation"] as? Int ?? 0
            progress("rollout: \(updated)/\(want) updated, \(ready) ready")
            if observed >= generation && updated == want && ready == want && available == want && total == want { return }
            try await Task.sleep(for: .milliseconds(500))
        }
        throw ValidationFailure(.metrics, "deployment \(deployment) did not finish rolling out in \(Int(target.rolloutTimeoutSeconds)) s")
    }
}
