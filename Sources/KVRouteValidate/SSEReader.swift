import Foundation
import KVRouteSSE

/// Reads OpenAI chunk events from a server-sent-events stream as bytes arrive (the framing
/// is ``ServerSentEventParser``'s, whatever the chunk boundaries): what TTFT is timed against.
struct SSEReader {
    struct Event {
        /// The first choice carries generated text (`delta.content`, or `text` for completions).
        var hasText = false
        var promptTokens: Int?
        var cachedTokens: Int?
        var error: String?
    }

    private var parser = ServerSentEventParser()

    /// Feeds more of the stream; returns the OpenAI events it completed.
    mutating func feed(_ bytes: some Sequence<UInt8>) -> [Event] {
        parser.feed(bytes).compactMap { Self.event($0.data) }
    }

    mutating func feed(_ text: String) -> [Event] { feed(text.utf8) }

    /// The OpenAI event of one SSE event's data, unless `[DONE]` or empty.
    static func event(_ data: String) -> Event? {
        let data = data.trimmingCharacters(in: .whitespaces)
        guard !data.isEmpty, data != "[DONE]" else { return nil }
        return parse(data)
    }

    static func parse(_ data: String) -> Event {
        var event = Event()
        guard let json = (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any] else { return event }
        if let e = json["error"] {
            event.error = ((e as? [String: Any])?["message"] as? String) ?? "\(e)"
        }
        if let choice = (json["choices"] as? [[String: Any]])?.first {
            let text = ((choice["delta"] as? [String: Any])?["content"] as? String) ?? (choice["text"] as? String) ?? ""
            event.hasText = !text.isEmpty
        }
        if let usage = json["usage"] as? [String: Any] {
            event.promptTokens = count(usage["prompt_tokens"])
            event.cachedTokens = count((usage["prompt_tokens_details"] as? [String: Any])?["cached_tokens"])
        }
        return event
    }

    /// A token count: an integer from 0 to 2^31 - 1 (the report sums them), else nil.
    static func count(_ value: Any?) -> Int? {
        guard let n = value as? Int, (0...Int(Int32.max)).contains(n) else { return nil }
        return n
    }
}
