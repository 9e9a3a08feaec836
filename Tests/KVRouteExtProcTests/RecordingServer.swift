import Foundation
import HTTPTypes
import Hummingbird
import KVRouteTestSupport
import Logging
import NIOCore
import Synchronization

/// An HTTP server that answers every completion with its name (`x-served-by`) and counts
/// what reached it: an engine stand-in, or a canary a request must never reach.
final class RecordingServer: Sendable {
    let name: String
    let port = freePort()
    private let count = Mutex(0)
    var url: String { "http://127.0.0.1:\(port)" }
    var address: String { "127.0.0.1:\(port)" }
    var hits: Int { count.withLock { $0 } }

    init(_ name: String) { self.name = name }

    var application: some ApplicationProtocol {
        let router = Router()
        router.post("/v1/chat/completions") { req, _ -> Response in
            _ = try await req.body.collect(upTo: 16 << 20)
            self.count.withLock { $0 += 1 }
            var headers = HTTPFields()
            headers[HTTPField.Name("x-served-by")!] = self.name
            headers[.contentType] = "application/json"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: #"{"served_by":"\#(self.name)"}"#)))
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: quietLogger)
    }
}
