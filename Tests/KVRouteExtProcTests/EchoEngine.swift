import Foundation
import HTTPTypes
import Hummingbird
import KVRouteTestSupport
import Logging
import NIOCore

/// A stand-in engine that answers completions with the exact request body it received and
/// the framing headers it saw, so a test can compare bytes end to end. It serves `/health`
/// and vLLM-shaped `/metrics` so the picker treats it as an engine.
struct EchoEngine {
    let port = freePort()
    var url: String { "http://127.0.0.1:\(port)" }

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
        router.post("/v1/chat/completions") { req, _ -> Response in
            let body = try await req.body.collect(upTo: 16 << 20)
            var headers = HTTPFields()
            headers[HTTPField.Name("x-echo-content-length")!] = req.headers[.contentLength] ?? "-"
            headers[HTTPField.Name("x-echo-transfer-encoding")!] = req.headers[.transferEncoding] ?? "-"
            headers[.contentType] = "application/octet-stream"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: body))
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: quietLogger)
    }
}
