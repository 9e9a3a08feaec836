import Foundation

/// Splits a server-sent-events stream into OpenAI chunk events as bytes arrive, whatever
/// the chunk boundaries (a CRLF or a UTF-8 character split between two chunks included):
/// what TTFT is timed against.
struct SSEReader {
    struct Event {
        /// The first choice carries generated text (`delta.content`, or `text` for completions).
        var hasText = false
        var promptTokens: Int?
        var cachedTokens: Int?
        var error: String?
    }

    /// Bytes of the event being received, CRs dropped (lines end in LF or CRLF).
    private var pending: [UInt8] = []
    /// Whether `pending` ends a line: the next LF ends the event.
    private var atLineStart = true

    /// Feeds more of the stream; returns the events it completed. Each byte is looked at
    /// once, so a stream sent a byte at a time costs no more than one sent whole.
    mutating func feed(_ bytes: some Sequence<UInt8>) -> [Event] {
        var events: [Event] = []
        for b in bytes {
            switch b {
            case UInt8(ascii: "\r"):
                continue
            case UInt8(ascii: "\n"):
                if atLineStart {
                    if let e = Self.event(pending) { events.append(e) }
                    pending.removeAll(keepingCapacity: true)
                } else {
                    pending.append(b)
                    atLineStart = true
                }
            default:
                pending.append(b)
                atLineStart = false
            }
        }
        return events
    }

    mutating func feed(_ text: String) -> [Event] { feed(text.utf8) }

    /// The event of one block of lines: its `data:` lines joined, unless `[DONE]` or empty.
    static func event(_ block: [UInt8]) -> Event? {
        let data = block.split(separator: UInt8(ascii: "\n"))
            .filter { $0.starts(with: "data:".utf8) }
            .map { String(decoding: $0.dropFirst(5), as: UTF8.self).trimmingCharacters(in: .whitespaces) }
            .joined(separator: "\n")
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
