import Foundation

/// Token usage an OpenAI response reports, read from the end of its body: the last
/// `"usage": {...}` object, which is where both a JSON answer and an SSE stream
/// (`stream_options.include_usage`, the final `data:` event) carry it.
public struct ResponseUsage: Sendable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var cachedTokens: Int

    public init(promptTokens: Int, completionTokens: Int, cachedTokens: Int) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.cachedTokens = cachedTokens
    }

    /// How much of a body's end is kept to find `usage`.
    public static let tailBytes = 64 << 10

    /// Appends a chunk to a body's kept tail, keeping at most ``tailBytes``.
    public static func keepTail(_ tail: inout [UInt8], _ chunk: some Collection<UInt8>) {
        tail.append(contentsOf: chunk.suffix(tailBytes))
        if tail.count > tailBytes { tail.removeFirst(tail.count - tailBytes) }
    }

    /// How many `"usage": {` candidates, from the end, are read before giving up: each one
    /// is scanned to its closing brace, so a body of unclosed ones must not cost a scan each.
    static let maxCandidates = 8

    /// The usage in `tail` (the end of a response body), or nil when it carries none.
    /// Token counts are non-negative integers; an object with any other is not usage.
    public static func parse(tail: [UInt8]) -> ResponseUsage? {
        let key = Array(#""usage""#.utf8)
        var end = tail.count
        var candidates = 0
        while candidates < maxCandidates, let at = lastIndex(of: key, in: tail, before: end) {
            end = at
            var i = at + key.count
            while i < tail.count, tail[i] == UInt8(ascii: " ") || tail[i] == UInt8(ascii: ":") { i += 1 }
            guard i < tail.count, tail[i] == UInt8(ascii: "{") else { continue }
            candidates += 1
            guard let close = matchingBrace(tail, from: i),
                  let object = try? JSONSerialization.jsonObject(with: Data(tail[i...close])) as? [String: Any] else { continue }
            let details = object["prompt_tokens_details"] as? [String: Any]
            guard let prompt = count(object["prompt_tokens"]), let completion = count(object["completion_tokens"]),
                  let cached = count(details?["cached_tokens"]) else { continue }
            return ResponseUsage(promptTokens: prompt, completionTokens: completion, cachedTokens: cached)
        }
        return nil
    }

    /// A token count: absent or null is 0; else a non-negative integer, or nil.
    static func count(_ value: Any?) -> Int? {
        switch value {
        case nil, is NSNull: return 0
        case let n as Int: return n >= 0 ? n : nil
        default: return nil
        }
    }

    static func lastIndex(of needle: [UInt8], in hay: [UInt8], before end: Int) -> Int? {
        var i = min(end, hay.count) - needle.count
        while i >= 0 {
            if hay[i] == needle[0], Array(hay[i..<(i + needle.count)]) == needle { return i }
            i -= 1
        }
        return nil
    }

    /// The index of the `}` closing the object that opens at `start`, skipping strings.
    static func matchingBrace(_ b: [UInt8], from start: Int) -> Int? {
        var depth = 0, inString = false, escaped = false
        for i in start..<b.count {
            let c = b[i]
            if inString {
                if escaped { escaped = false } else if c == UInt8(ascii: "\\") { escaped = true } else if c == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch c {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"): depth += 1
            case UInt8(ascii: "}"):
                depth -= 1
                if depth == 0 { return i }
            default: break
            }
        }
        return nil
    }
}
