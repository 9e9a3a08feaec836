import Foundation
import KVRouteCore
import KVRouteGateway
import KVRouteTestSupport
import Logging

/// Runs `body` against a gateway in front of `endpoints`, on a free loopback port.
func withGateway<T: Sendable>(
    endpoints: [String], config: EndpointPickerConfig = .kvrouteDefault,
    seed: UInt64? = 1, explainSecret: String? = nil, _ body: @Sendable (Gateway, String) async throws -> T
) async throws -> T {
    let gateway = try Gateway(configuration: GatewayConfiguration(
        host: "127.0.0.1", port: 0, endpoints: endpoints, pickerConfig: config,
        maxBodyBytes: 4 << 20, explainSecret: explainSecret, seed: seed), logger: quietLogger)
    await gateway.warmUp()
    return try await withServices(gateway.services) {
        let port = await gateway.waitUntilListening()
        return try await body(gateway, "http://127.0.0.1:\(port)")
    }
}

/// Sums a counter over every engine's /metrics page.
func engineSum(_ urls: [String], _ name: String) async throws -> Double {
    var total = 0.0
    for u in urls { total += TestHTTP.metricSum(try await TestHTTP.request(u + "/metrics").body, name) }
    return total
}

/// Δhits / Δqueries over the engines while `work` runs, with what `work` returned.
func deltaHitRate<T: Sendable>(_ urls: [String], _ work: @Sendable () async throws -> T) async throws -> (rate: Double, queries: Double, result: T) {
    let q0 = try await engineSum(urls, "vllm:prefix_cache_queries_total")
    let h0 = try await engineSum(urls, "vllm:prefix_cache_hits_total")
    let result = try await work()
    let q1 = try await engineSum(urls, "vllm:prefix_cache_queries_total")
    let h1 = try await engineSum(urls, "vllm:prefix_cache_hits_total")
    return (q1 > q0 ? (h1 - h0) / (q1 - q0) : 0, q1 - q0, result)
}

/// A system prompt of about `tokens` tokens (4 characters each), distinct per `group`.
func systemPrompt(group: Int, tokens: Int) -> String {
    let sentence = "Group \(group) policy: answer with care, cite the plan, keep the tone even. "
    var s = ""
    while s.utf8.count < tokens * 4 { s += sentence }
    return s
}

func chatBody(system: String, user: String, maxTokens: Int = 8, stream: Bool = false) -> [String: Any] {
    var b: [String: Any] = [
        "model": "meta-llama/Llama-3.2-3B-Instruct", "max_tokens": maxTokens, "temperature": 0,
        "messages": [["role": "system", "content": system], ["role": "user", "content": user]],
    ]
    if stream { b["stream"] = true }
    return b
}
