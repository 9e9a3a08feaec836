import Foundation

/// Splits a server-sent-events stream into OpenAI chunk events as bytes arrive, whatever
/// the chunk boundaries: what TTFT is timed against.
struct SSEReader {
    struct Event {
        /// The first choice carries generated text (`delta.content`, or `text` for completions).
        var hasText = false
        var promptTokens: Int?
        var cachedTokens: Int?
        var error: String?
    }

    private var pending = ""

    /// Feeds more of the stream; returns the events it completed.
    mutating func feed(_ text: String) -> [Event] {
        pending += text.replacingOccurrences(of: "\r\n", with: "\n")
        var events: [Event] = []
        while let r = pending.range(of: "\n\n") {
            let block = pending[..<r.lowerBound]
            pending.removeSubrange(..<r.upperBound)
            let data = block.split(separator: "\n").filter { $0.hasPrefix("data:") }
                .map { $0.dropFirst(5).trimmingCharacters(in: .whitespaces) }.joined(separator: "\n")
            if !data.isEmpty, data != "[DONE]" { events.append(Self.parse(data)) }
        }
        return events
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
            event.promptTokens = usage["prompt_tokens"] as? Int
            event.cachedTokens = (usage["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int
        }
        return event
    }
}
