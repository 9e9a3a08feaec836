import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL

/// The few Kubernetes API calls the validator makes with the pod's service account: list
/// the engine pods by label selector, find the Deployment that owns them, and restart it
/// the way `kubectl rollout restart` does (a PATCH of the pod template's
/// `kubectl.kubernetes.io/restartedAt` annotation), then wait for the rollout.
struct KubernetesClient: Sendable {
    let target: KubernetesTarget
    /// API server base URL, without a trailing slash.
    let base: String
    let token: String?
    let tls: TLSConfiguration?
    let client: HTTPClient
    let logger: Logger

    /// Resolves the API server, token and CA: settings first, then `KVROUTE_KUBE_*`
    /// variables, then the in-cluster service account.
    init(target: KubernetesTarget, environment: [String: String], client: HTTPClient, logger: Logger) throws {
        self.target = target
        self.client = client
        self.logger = logger
        if let s = target.apiServer ?? environment["KVROUTE_KUBE_API_SERVER"] {
            base = s.hasSuffix("/") ? String(s.dropLast()) : s
        } else {
            guard let host = environment["KUBERNETES_SERVICE_HOST"], let port = environment["KUBERNETES_SERVICE_PORT"] else {
                throw ValidationFailure(.usage, "not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST is unset): pass --api-server (e.g. kubectl proxy's http://127.0.0.1:8001) or --metrics-urls")
            }
            base = "https://\(host.contains(":") ? "[\(host)]" : host):\(port)"
        }
        guard let url = URL(string: base), url.host != nil, url.scheme == "http" || url.scheme == "https" else {
            throw ValidationFailure(.usage, "--api-server \(base) is not an http(s) URL")
        }
        let dir = KubernetesTarget.serviceAccountDirectory
        let tokenFile = target.tokenFile ?? environment["KVROUTE_KUBE_TOKEN_FILE"] ?? dir + "/token"
        token = (try? String(contentsOfFile: tokenFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        if base.hasPrefix("https:"), let ca = target.caFile ?? environment["KVROUTE_KUBE_CA_FILE"] ?? Optional(dir + "/ca.crt"),
           FileManager.default.fileExists(atPath: ca) {
            var t = TLSConfiguration.makeClientConfiguration()
            t.trustRoots = .file(ca)
            tls = t
        } else {
            tls = nil
        }
    }

    /// One API call; non-2xx answers become a failure carrying the API server's message.
    func call<T: Decodable>(_ method: HTTPMethod, _ path: String, body: String? = nil,
                            contentType: String = "application/json", as: T.Type) async throws -> T {
        var req = HTTPClientRequest(url: base + path)
        req.method = method
        req.tlsConfiguration = tls
        if let token, !token.isEmpty { req.headers.add(name: "authorization", value: "Bearer \(token)") }
        req.headers.add(name: "accept", value: "application/json")
        if let body {
            req.headers.add(name: "content-type", value: contentType)
            req.body = .bytes(ByteBuffer(string: body))
        }
        logger.debug("kubernetes request", metadata: ["method": "\(method.rawValue)", "path": "\(path)"])
        let res: HTTPClientResponse
        let data: ByteBuffer
        do {
            res = try await client.execute(req, timeout: .seconds(30))
            data = try await res.body.collect(upTo: 32 << 20)
        } catch {
            throw ValidationFailure(.metrics, "the Kubernetes API at \(base) is unreachable: \(ValidationFailure.describe(error))", cause: error)
        }
        let bytes = Data(data.readableBytesView)
        guard (200..<300).contains(Int(res.status.code)) else {
            let status = try? JSONDecoder().decode(KubernetesObjects.Status.self, from: bytes)
            let why = status?.message ?? String(String(decoding: bytes, as: UTF8.self).prefix(200))
            throw ValidationFailure(.metrics, "Kubernetes API \(method.rawValue) \(path) answered HTTP \(res.status.code): \(why)")
        }
        do {
            return try JSONDecoder().decode(T.self, from: bytes)
        } catch {
            throw ValidationFailure(.metrics, "Kubernetes API \(method.rawValue) \(path) answered something that is not a \(T.self)", cause: error)
        }
    }

    var namespacePath: String { "/namespaces/\(Self.escape(target.namespace))" }

    /// The pods matching the selector that can serve (running, ready, not being deleted).
    func servingPods() async throws -> [KubernetesObjects.Pod] {
        let list = try await call(.GET, "/api/v1\(namespacePath)/pods?labelSelector=\(Self.escape(target.selector))", as: KubernetesObjects.PodList.self)
        return (list.items ?? []).filter(\.serving)
    }

    /// The serving pods as engine targets, sorted by address.
    func engines() async throws -> [EngineTarget] {
        try await servingPods().compactMap { pod -> EngineTarget? in
            guard let ip = pod.status?.podIP else { return nil }
            let port = target.metricsPort ?? Self.metricsPort(pod) ?? 8000
            let host = ip.contains(":") ? "[\(ip)]" : ip
            return EngineTarget(address: "\(host):\(port)", baseURL: "http://\(host):\(port)", name: pod.metadata?.name)
        }.sorted { ($0.address, $0.label) < ($1.address, $1.label) }
    }

    /// The pod's `prometheus.io/port` annotation, else its container port named `http` or
    /// `metrics`, else its only declared port.
    static func metricsPort(_ pod: KubernetesObjects.Pod) -> Int? {
        if let a = pod.metadata?.annotations?["prometheus.io/port"], let p = Int(a) { return p }
        let ports = (pod.spec?.containers ?? []).flatMap { $0.ports ?? [] }
        if let named = ports.first(where: { ["http", "metrics"].contains($0.name ?? "") }) { return named.containerPort }
        return ports.count == 1 ? ports[0].containerPort : nil
    }

    /// The Deployments that own the serving pods (pod → ReplicaSet → Deployment). When the
    /// ReplicaSet cannot be read (a service account allowed only pods and deployments), its
    /// name minus the `pod-template-hash` suffix is the Deployment's, as the controller names it.
    func owningDeployments() async throws -> [String] {
        var names: Set<String> = []
        var replicaSets: Set<String> = []
        for pod in try await servingPods() {
            guard let rs = pod.metadata?.controller(kind: "ReplicaSet") else { continue }
            replicaSets.insert(rs)
            if let hash = pod.metadata?.labels?["pod-template-hash"], rs.hasSuffix("-" + hash) {
                names.insert(String(rs.dropLast(hash.count + 1)))
            }
        }
        var found: Set<String> = []
        for rs in replicaSets {
            if let set = try? await call(.GET, "/apis/apps/v1\(namespacePath)/replicasets/\(Self.escape(rs))", as: KubernetesObjects.ReplicaSet.self),
               let d = set.metadata?.controller(kind: "Deployment") {
                found.insert(d)
            }
        }
        return (found.isEmpty ? names : found).sorted()
    }

    /// `kubectl rollout restart deployment/NAME`, then waits until the rollout completes.
    /// `progress` hears each change of the rollout's state, not every poll.
    func restart(deployment: String, at now: Date, progress: (String) -> Void) async throws {
        let stamp = ISO8601DateFormatter().string(from: now)
        let patch = #"{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"\#(stamp)"}}}}}"#
        let path = "/apis/apps/v1\(namespacePath)/deployments/\(Self.escape(deployment))"
        let patched = try await call(.PATCH, path, body: patch, contentType: "application/strategic-merge-patch+json", as: KubernetesObjects.Deployment.self)
        let generation = patched.metadata?.generation ?? 0
        let deadline = Date().addingTimeInterval(target.rolloutTimeoutSeconds)
        var last = ""
        while true {
            let d = try await call(.GET, path, as: KubernetesObjects.Deployment.self)
            if d.progressLine != last {
                last = d.progressLine
                progress("rollout of \(deployment): \(last)")
            }
            // The generation the controller must observe: the patched one, or a later one.
            if d.rolledOut(generation: max(generation, d.metadata?.generation ?? 0)) { return }
            guard Date() < deadline else {
                throw ValidationFailure(.metrics, "deployment \(deployment) did not finish rolling out within \(Int(target.rolloutTimeoutSeconds)) s (\(last))")
            }
            try await Task.sleep(for: .seconds(target.pollIntervalSeconds))
        }
    }

    /// Percent-encodes a path segment or query value (a label selector has `=`, `,`, `!`, `/`).
    static func escape(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? s
    }
}
