import Foundation

extension Llama3ChatTemplate {
    /// How messages become prompt text.
    public enum Style: Sendable, Hashable {
        /// Markers around each message and nothing else; pairs with ``ApproximateTokenizer``.
        case compact
        /// Llama 3.2 Instruct's chat template as vLLM renders it (Jinja, through
        /// `transformers`): a system block that always opens the prompt,
        ///
        ///     <|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n
        ///     Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n{system}<|eot_id|>
        ///
        /// then each message with its content trimmed of surrounding whitespace (tool and
        /// ipython messages go under an `ipython` header as a JSON string), then the assistant
        /// generation prompt. `date` is the "Today Date" text; nil means today's date in the
        /// local time zone at each render (the template's `strftime_now("%d %b %Y")`), a fixed
        /// string makes prompts reproducible (the template's `date_string` variable).
        case llama32(date: String? = nil)
    }

    /// The special tokens the Llama 3.2 template writes, by text.
    static let specialTexts: [UInt32: String] = [
        beginOfText: "<|begin_of_text|>", startHeader: "<|start_header_id|>",
        endHeader: "<|end_header_id|>", endOfTurn: "<|eot_id|>",
    ]

    /// The prompt text a chat request renders to, special tokens written out: the string
    /// vLLM's chat template produces before tokenizing it.
    public func renderText(_ messages: [ChatTurn], addGenerationPrompt: Bool = true) -> String {
        let segments: [Segment]
        switch style {
        case .compact: segments = compactSegments(messages, addGenerationPrompt: addGenerationPrompt)
        case .llama32(let date): segments = llama32Segments(messages, date: date, addGenerationPrompt: addGenerationPrompt)
        }
        var text = ""
        for s in segments {
            switch s {
            case .special(let id): text += Self.specialTexts[id] ?? ""
            case .text(let t): text += t
            }
        }
        return text
    }

    /// "26 Jul 2024": `strftime("%d %b %Y")` in the C locale.
    public static func dateString(_ date: Date = Date(), timeZone: TimeZone = .current) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let c = calendar.dateComponents([.year, .month, .day], from: date)
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let day = c.day ?? 1, month = months[((c.month ?? 1) - 1) % 12], year = c.year ?? 1970
        return "\(day < 10 ? "0" : "")\(day) \(month) \(year)"
    }

    enum Segment {
        case special(UInt32)
        case text(String)
    }

    /// Tokens of the Llama 3.2 rendering. Runs of text between special tokens are encoded
    /// whole, as vLLM's tokenizer sees them; the special tokens are their ids.
    func renderLlama32(_ messages: [ChatTurn], date: String?, addGenerationPrompt: Bool) -> [UInt32] {
        var out: [UInt32] = []
        var pending = ""
        for s in llama32Segments(messages, date: date, addGenerationPrompt: addGenerationPrompt) {
            switch s {
            case .text(let t):
                pending += t
            case .special(let id):
                if !pending.isEmpty { out.append(contentsOf: tokenizer.encode(pending)) }
                pending = ""
                out.append(id)
            }
        }
        if !pending.isEmpty { out.append(contentsOf: tokenizer.encode(pending)) }
        return out
    }

    func llama32Segments(_ messages: [ChatTurn], date: String?, addGenerationPrompt: Bool) -> [Segment] {
        var messages = messages[...]
        var system = ""
        if let first = messages.first, first.role == "system" {
            system = Self.trimmed(first.content)
            messages = messages.dropFirst()
        }
        var out: [Segment] = [
            .special(Self.beginOfText), .special(Self.startHeader), .text("system"), .special(Self.endHeader),
            .text("\n\nCutting Knowledge Date: December 2023\nToday Date: \(date ?? Self.dateString())\n\n\(system)"),
            .special(Self.endOfTurn),
        ]
        for m in messages {
            if m.role == "tool" || m.role == "ipython" {
                out += [.special(Self.startHeader), .text("ipython"), .special(Self.endHeader), .text("\n\n" + Self.jsonString(m.content))]
            } else {
                out += [.special(Self.startHeader), .text(m.role), .special(Self.endHeader), .text("\n\n" + Self.trimmed(m.content))]
            }
            out.append(.special(Self.endOfTurn))
        }
        if addGenerationPrompt {
            out += [.special(Self.startHeader), .text("assistant"), .special(Self.endHeader), .text("\n\n")]
        }
        return out
    }

    func compactSegments(_ messages: [ChatTurn], addGenerationPrompt: Bool) -> [Segment] {
        var out: [Segment] = [.special(Self.beginOfText)]
        for m in messages {
            out += [.special(Self.startHeader), .text(m.role), .special(Self.endHeader), .text("\n\n" + m.content), .special(Self.endOfTurn)]
        }
        if addGenerationPrompt {
            out += [.special(Self.startHeader), .text("assistant"), .special(Self.endHeader), .text("\n\n")]
        }
        return out
    }

    /// Jinja's `trim`: Python's `str.strip()`, which drops what `str.isspace()` calls space,
    /// a slightly wider set than Unicode White_Space (it includes U+001C...U+001F).
    static func trimmed(_ s: String) -> String {
        let scalars = s.unicodeScalars
        guard let start = scalars.firstIndex(where: { !isPythonSpace($0) }) else { return "" }
        let end = scalars.lastIndex(where: { !isPythonSpace($0) })!
        return String(scalars[start...end])
    }

    static func isPythonSpace(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// The template's `tojson` on a string, as `transformers` defines it:
    /// `json.dumps(s, ensure_ascii=False)`.
    static func jsonString(_ s: String) -> String { JSONString.quoted(s) }
}
