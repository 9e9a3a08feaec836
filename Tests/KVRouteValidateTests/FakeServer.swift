import Foundation
import Hummingbird
import KVRouteTestSupport
import Logging
import Synchronization

/// A tiny HTTP server answering fixed routes: stands in for the Kubernetes API server, a
/// Prometheus that errors, or an engine without prefix-cache metrics.
final class FakeServer: Sendable {
    struct Call: Sendable { var method: String; var path: String; var body: String }
    let calls = Mutex<[Call]>([])
    let handler: @Sendable (String, String, Int) -> (Int, String)

    /// `handler(method, path with query, call index of that path) -> (status, body)`.
    init(_ handler: @escaping @Sendable (String, String, Int) -> (Int, String)) {
        self.handler = handler
    }

    func run<T: Sendable>(_ body: @Sendable (String) async throws -> T) async throws -> T {
        let router = Router()
        let me = self
        router.on("/**", method: .get) { req, ctx in try await me.answer(req, ctx) }
        router.on("/**", method: .post) { req, ctx in try await me.answer(req, ctx) }
        router.on("/**", method: .patch) { req, ctx in try await me.answer(req, ctx) }
        let port = freePort()
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: quietLogger)
        return try await withServices([app]) {
            for _ in 0..<100 {
                if (try? await TestHTTP.request("http://127.0.0.1:\(port)/__ready", contentType: nil)) != nil { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            return try await body("http://127.0.0.1:\(port)")
        }
    }

    func answer(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let body = try await req.body.collect(upTo: 1 << 20)
        let path = req.uri.description
        let n = calls.withLock { c in
            c.append(Call(method: req.method.rawValue, path: path, body: String(buffer: body)))
            return c.filter { $0.path == path && $0.method == req.method.rawValue }.count - 1
        }
        let (status, text) = handler(req.method.rawValue, path, n)
        return Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

func fixture(_ name: String) throws -> String {
    try String(contentsOf: ExternalTool.repositoryRoot.appendingPathComponent("Tests/fixtures/kubernetes/\(name)"), encoding: .utf8)
}
