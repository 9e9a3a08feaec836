import Benchmark
import Foundation
import KVRouteCore

/// A chat request as agents send them, about 4 KB: a long system prompt, a few turns (one
/// with content parts), sampling parameters, stream options and a tool definition.
let chatBody4KB: [UInt8] = {
    let system = String(repeating: "You are the support assistant of Acme Cloud. Answer briefly, cite the runbook, never guess. ", count: 32)
    let body = """
        {"model":"meta-llama/Llama-3.2-3B-Instruct","stream":true,"stream_options":{"include_usage":true},\
        "max_tokens":256,"temperature":0.7,"top_p":0.95,"user":"tenant-17","cache_salt":"s-17",\
        "messages":[{"role":"system","content":"\(system)"},\
        {"role":"user","content":"My deploy fails with \\"exit 137\\" \\u2014 why?\\nIt worked yesterday."},\
        {"role":"assistant","content":"Exit 137 means the kernel killed the process: it ran out of memory."},\
        {"role":"user","content":[{"type":"text","text":"Here is the log tail, café ☕:"},{"type":"text","text":"OOMKilled at 2026-11-30T12:00:00Z"}]}],\
        "tools":[{"type":"function","function":{"name":"lookup_runbook","description":"Finds a runbook page",\
        "parameters":{"type":"object","properties":{"query":{"type":"string"},"limit":{"type":"integer","minimum":1,"maximum":10}},"required":["query"]}}}]}
        """
    return Array(body.utf8)
}()

/// The parse as it was before the scanner, kept here to measure against: a full
/// JSONSerialization tree, then the fields read out of it.
func foundationParse(body: [UInt8], apiKind: APIKind) throws -> (model: String, prompt: PromptContent, stream: Bool) {
    guard let json = try JSONSerialization.jsonObject(with: Data(body), options: []) as? [String: Any],
        let model = json["model"] as? String, let list = json["messages"] as? [Any]
    else { throw KVRouteError(code: .invalidRequest, message: "not a chat request") }
    func text(_ value: Any?) -> String {
        switch value {
        case let s as String: return s
        case let parts as [Any]:
            return parts.map { p -> String in
                if let s = p as? String { return s }
                if let d = p as? [String: Any] { return (d["text"] as? String) ?? (d["content"].map { text($0) } ?? "") }
                return ""
            }.joined()
        default: return ""
        }
    }
    let messages = list.compactMap { item -> ChatMessage? in
        guard let m = item as? [String: Any] else { return nil }
        return ChatMessage(role: (m["role"] as? String) ?? "", content: text(m["content"]))
    }
    return (model, .messages(messages), (json["stream"] as? Bool) ?? false)
}

func requestParsingBenchmarks() {
    let configuration = Benchmark.Configuration(
        metrics: [.wallClock, .instructions, .mallocCountTotal], warmupIterations: 100, scalingFactor: .kilo, maxDuration: .seconds(3),
        thresholds: [
            .wallClock: .init(relative: [.p50: 25, .p99: 100]),
            .mallocCountTotal: .init(relative: [.p50: 5, .p99: 5], absolute: [.p50: 2, .p99: 2]),
        ])
    Benchmark("Request parse: 4 KB chat body (scanner)", configuration: configuration) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try OpenAIRequestParser.parse(body: chatBody4KB, apiKind: .chatCompletions))
        }
    }
    Benchmark("Request parse: 4 KB chat body (JSONSerialization, before)", configuration: configuration) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try foundationParse(body: chatBody4KB, apiKind: .chatCompletions))
        }
    }
}
