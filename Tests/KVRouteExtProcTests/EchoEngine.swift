import Foundation
import HTTPTypes
import Hummingbird
import KVRouteTestSupport
import Logging
import NIOCore
import Synchronization

/// A stand-in engine that answers completions with the exact request body it received and
/// the framing headers it saw, so a test can compare bytes end to end. It serves `/health`
/// and vLLM-shaped `/metrics` (healthy and idle) so the picker treats it as an engine.
/// Made `refusing`, it answers every completion 503 instead (as a vLLM engine out of KV cache
/// or shutting down does), so Envoy retries on the next endpoint the picker named.
final class EchoEngine: Sendable {
    let port = freePort()
    let refusing: Bool
    /// Completions it received (echoed or refused).
    let completions = Atomic<Int>(0)
    var url: String { "http://127.0.0.1:\(port)" }
    var address: String { "127.0.0.1:\(port)" }

    init(refusing: Bool = false) {
        self.refusing = refusing
    }

    var application: some ApplicationProtocol {
        let router = Router()
        router.get("/health") { _, _ in Response(status: .ok) }
        router.get("/metrics") { _, _ in
            let text = """
            vllm:num_requests_running{model_name="meta-llama/Llama-3.2-3B-Instruct",engine="0"} 0
            vllm:num_requests_waiting{model_name="meta-llama/Llama-3.2-3B-Instruct",engine="0"} 0
            vllm:kv_cache_usage_perc{model_name="meta-llama/Llama-3.2-3B-Instruct",engine="0"} 0

            """
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        router.post("/v1/chat/completions") { [self] req, _ -> Response in
            let body = try await req.body.collect(upTo: 16 << 20)
            completions.add(1, ordering: .relaxed)
            if refusing {
                return Response(status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: #"{"error":{"message":"refused"}}"#)))
            }
            var headers = HTTPFields()
            headers[HTTPField.Name("x-echo-content-length")!] = req.headers[.contentLength] ?? "-"
            headers[HTTPField.Name("x-echo-transfer-encoding")!] = req.headers[.transferEncoding] ?? "-"
            headers[.contentType] = "application/octet-stream"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: body))
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: quietLogger)
    }
}
