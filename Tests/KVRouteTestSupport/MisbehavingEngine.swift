import Hummingbird
import NIOCore

/// An engine that answers health checks and completions like vLLM but reports whatever
/// `/metrics` page it is given: NaN queues, infinite counters, binary junk.
public struct MisbehavingEngine: Sendable {
    public let port = freePort()
    public let metricsPage: [UInt8]
    public var url: String { "http://127.0.0.1:\(port)" }

    public init(metricsPage: [UInt8]) { self.metricsPage = metricsPage }

    /// A page with every kind of bad sample next to one good one (`waiting` 2 for `model`).
    public static func garbagePage(model: String = "meta-llama/Llama-3.2-3B-Instruct") -> [UInt8] {
        let text = """
        # HELP vllm:num_requests_waiting Number of requests waiting to be processed.
        # TYPE vllm:num_requests_waiting gauge
        vllm:num_requests_waiting{model_name="m"} NaN
        vllm:num_requests_running{model_name="m"} +Inf
        vllm:num_requests_waiting{model_name="m",engine="1"} 1e300
        vllm:num_requests_running{model_name="m",engine="1"} -5
        vllm:num_requests_waiting{model_name="m",engine="2"} 9223372036854775808
        vllm:kv_cache_usage_perc{model_name="m"} 7
        vllm:kv_cache_usage_perc{model_name="m",engine="1"} -Inf
        vllm:prefix_cache_queries_total{model_name="m"} 1e300
        vllm:prefix_cache_hits_total{model_name="m"} NaN
        vllm:cache_config_info{block_size="-16",num_gpu_blocks="99999999999999999999999",enable_prefix_caching="True"} 1
        vllm:num_requests_running{model_name="\(String(repeating: "x", count: 100_000))"} 1
        vllm:num_requests_waiting{model_name="\(model)",engine="3"} 2
        vllm:num_requests_running{model_name="\(model)",engine="3"} 1

        """
        var bytes = Array(text.utf8)
        // Binary junk, some of it shaped like a vLLM sample.
        bytes += Array("vllm:num_requests_waiting{model_name=\"".utf8) + [0x00, 0xFF, 0xFE, 0x22, 0x7D, 0x20, 0xC3, 0x28] + Array(" 1e999\n".utf8)
        bytes += (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) }
        bytes += Array("\nvllm:num_requests_running{\u{7}\u{0}} 3\n".utf8)
        return bytes
    }

    /// Runs the engine around `body`.
    public func run<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        let page = metricsPage
        let router = Router()
        router.get("/health") { _, _ in Response(status: .ok) }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(bytes: page)))
        }
        router.post("/v1/chat/completions") { req, _ -> Response in
            _ = try await req.body.collect(upTo: 16 << 20)
            let answer = #"{"id":"chatcmpl-x","object":"chat.completion","created":0,"model":"meta-llama/Llama-3.2-3B-Instruct","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"length"}],"usage":{"prompt_tokens":1,"total_tokens":2,"completion_tokens":1}}"#
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: answer)))
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: quietLogger)
        return try await withServices([app]) {
            try await waitForPort(port)
            return try await body()
        }
    }
}
