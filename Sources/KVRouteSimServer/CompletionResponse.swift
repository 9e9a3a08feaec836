import Foundation
import KVRouteEngineSim

/// JSON shapes of vLLM's OpenAI responses, written by hand into bytes: the streaming path
/// writes one chunk per token, and this keeps it allocation-light and key order stable.
enum CompletionResponse {
    /// `usage`. vLLM reports `prompt_tokens_details.cached_tokens` only when it runs with
    /// `--enable-prompt-tokens-details`; otherwise a full response says
    /// `"prompt_tokens_details": null` and a stream's usage chunk (which drops nulls) leaves
    /// the field out.
    struct Usage {
        var promptTokens: Int
        var completionTokens: Int
        /// Nil unless prompt-token details are enabled.
        var cachedTokens: Int?

        /// As in a full (non-streaming) response.
        var json: String { render(nulls: true) }
        /// As in a stream's final usage chunk.
        var chunkJSON: String { render(nulls: false) }

        private func render(nulls: Bool) -> String {
            let head = "{\"prompt_tokens\":\(promptTokens),\"total_tokens\":\(promptTokens + completionTokens),\"completion_tokens\":\(completionTokens)"
            if let cachedTokens { return head + ",\"prompt_tokens_details\":{\"cached_tokens\":\(cachedTokens)}}" }
            return head + (nulls ? ",\"prompt_tokens_details\":null}" : "}")
        }
    }

    static func escape(_ s: String) -> String { JSONString.quoted(s) }

    static func full(kind: CompletionRequest.Kind, id: String, created: Int, model: String, text: String, finish: FinishReason, usage: Usage) -> String {
        switch kind {
        case .chat:
            return "{\"id\":\"\(id)\",\"object\":\"chat.completion\",\"created\":\(created),\"model\":\(escape(model)),\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\(escape(text)),\"tool_calls\":[]},\"logprobs\":null,\"finish_reason\":\"\(finish.rawValue)\",\"stop_reason\":null}],\"usage\":\(usage.json)}"
        case .completion:
            return "{\"id\":\"\(id)\",\"object\":\"text_completion\",\"created\":\(created),\"model\":\(escape(model)),\"choices\":[{\"index\":0,\"text\":\(escape(text)),\"logprobs\":null,\"finish_reason\":\"\(finish.rawValue)\",\"stop_reason\":null}],\"usage\":\(usage.json)}"
        }
    }

    /// One SSE event carrying a delta. `role` is sent on the chat stream's first chunk. No
    /// `usage` key: vLLM 0.32 leaves unset fields out of chunks (older releases sent
    /// `"usage": null` with `stream_options.include_usage`).
    static func chunk(kind: CompletionRequest.Kind, id: String, created: Int, model: String, text: String, role: Bool, finish: FinishReason?) -> String {
        let fin = finish.map { "\"\($0.rawValue)\"" } ?? "null"
        switch kind {
        case .chat:
            let delta = role ? "{\"role\":\"assistant\",\"content\":\(escape(text))}" : "{\"content\":\(escape(text))}"
            return "data: {\"id\":\"\(id)\",\"object\":\"chat.completion.chunk\",\"created\":\(created),\"model\":\(escape(model)),\"choices\":[{\"index\":0,\"delta\":\(delta),\"logprobs\":null,\"finish_reason\":\(fin)}]}\n\n"
        case .completion:
            return "data: {\"id\":\"\(id)\",\"object\":\"text_completion\",\"created\":\(created),\"model\":\(escape(model)),\"choices\":[{\"index\":0,\"text\":\(escape(text)),\"logprobs\":null,\"finish_reason\":\(fin)}]}\n\n"
        }
    }

    /// The final usage-only chunk of `stream_options.include_usage`.
    static func usageChunk(kind: CompletionRequest.Kind, id: String, created: Int, model: String, usage: Usage) -> String {
        let object = kind == .chat ? "chat.completion.chunk" : "text_completion"
        return "data: {\"id\":\"\(id)\",\"object\":\"\(object)\",\"created\":\(created),\"model\":\(escape(model)),\"choices\":[],\"usage\":\(usage.chunkJSON)}\n\n"
    }

    static let done = "data: [DONE]\n\n"
}
