/// One timed chat request through the gateway.
struct ChatSample: Sendable {
    var session: String
    /// Position in its session's measured loop (0-based).
    var index: Int
    /// Seconds from the start of the measured loop to sending this request.
    var sentAt: Double
    /// HTTP status (0 when no response came).
    var status: Int
    /// Seconds to the first streamed content token (nil when none came).
    var ttft: Double?
    /// Seconds to the end of the response.
    var total: Double
    /// `x-upstream-host`, else `x-inference-pod`: the engine that served the request.
    var upstream: String?
    /// `usage.prompt_tokens` and `usage.prompt_tokens_details.cached_tokens`, when sent.
    var promptTokens: Int?
    var cachedTokens: Int?
    /// Why the request failed; nil when it streamed tokens and ended cleanly.
    var error: String?

    var ok: Bool { error == nil }
}
