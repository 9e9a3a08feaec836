import Foundation
import Hummingbird
import KVRouteTestSupport
import Logging
import Synchronization

/// A tiny HTTP server answering from a handler: stands in for the Kubernetes API server, a
/// Prometheus that errors, or an engine without prefix-cache metrics.
final class FakeServer: Sendable {
    struct Call: Sendable {
        var method: String
        /// Path with the raw query.
        var path: String
        var body: String
        var contentType: String?
        var authorization: String?
    }

    let calls = Mutex<[Call]>([])
    let handler: @Sendable (_ method: String, _ path: String, _ count: Int) -> (Int, String)
    let contentType: String

    /// `handler(method, path with query, how many earlier calls had this method and path)`
    /// returns the status and body.
    init(contentType: String = "application/json", _ handler: @escaping @Sendable (String, String, Int) -> (Int, String)) {
        self.contentType = contentType
        self.handler = handler
    }

    var recorded: [Call] { calls.withLock { $0 } }

    func run<T: Sendable>(_ body: @Sendable (String) async throws -> T) async throws -> T {
        let router = Router()
        let me = self
        for method in [HTTPRequest.Method.get, .post, .patch, .put, .delete] {
            router.on("/**", method: method) { req, ctx in try await me.answer(req, ctx) }
        }
        let port = freePort()
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: quietLogger)
        return try await withServices([app]) {
            for _ in 0..<250 {
                if (try? await TestHTTP.request("http://127.0.0.1:\(port)/__ready", contentType: nil)) != nil { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            calls.withLock { $0.removeAll() }
            return try await body("http://127.0.0.1:\(port)")
        }
    }

    func answer(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let body = try await req.body.collect(upTo: 1 << 20)
        let path = req.uri.description
        let call = Call(method: req.method.rawValue, path: path, body: String(buffer: body),
                        contentType: req.headers[.contentType], authorization: req.headers[.authorization])
        let n = calls.withLock { c in
            c.append(call)
            return c.filter { $0.path == path && $0.method == call.method }.count - 1
        }
        let (status, text) = handler(call.method, path, n)
        return Response(status: .init(code: status), headers: [.contentType: contentType], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// A recorded API-server response from Tests/fixtures/kubernetes.
func fixture(_ name: String) throws -> String {
    try String(contentsOf: ExternalTool.repositoryRoot.appendingPathComponent("Tests/fixtures/kubernetes/\(name)"), encoding: .utf8)
}
