/// One chat message as the engine sees it.
public struct ChatTurn: Sendable, Hashable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// Renders chat messages to prompt tokens the way Llama-3's template does. In the
/// ``Style/compact`` style:
///
///     <|begin_of_text|>
///     <|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>   (per message)
///     <|start_header_id|>assistant<|end_header_id|>\n\n                    (generation prompt)
///
/// Markers are single special tokens; each piece of text is encoded on its own, so equal
/// leading messages give equal leading tokens. The ``Style/llama32(date:)`` style renders
/// Llama 3.2 Instruct's full template, system block and date header included, as vLLM does.
public struct Llama3ChatTemplate: Sendable {
    public static let beginOfText: UInt32 = 128_000
    public static let startHeader: UInt32 = 128_006
    public static let endHeader: UInt32 = 128_007
    public static let endOfTurn: UInt32 = 128_009

    public let tokenizer: any Tokenizer
    public let style: Style

    public init(tokenizer: any Tokenizer = ApproximateTokenizer(), style: Style = .compact) {
        self.tokenizer = tokenizer
        self.style = style
    }

    /// Prompt tokens for a chat request, with the assistant generation prompt appended.
    public func render(_ messages: [ChatTurn], addGenerationPrompt: Bool = true) -> [UInt32] {
        if case .llama32(let date) = style {
            return renderLlama32(messages, date: date, addGenerationPrompt: addGenerationPrompt)
        }
        var out: [UInt32] = [Self.beginOfText]
        let blank = tokenizer.encode("\n\n")
        for m in messages {
            out.append(Self.startHeader)
            out.append(contentsOf: tokenizer.encode(m.role))
            out.append(Self.endHeader)
            out.append(contentsOf: blank)
            out.append(contentsOf: tokenizer.encode(m.content))
            out.append(Self.endOfTurn)
        }
        if addGenerationPrompt {
            out.append(Self.startHeader)
            out.append(contentsOf: tokenizer.encode("assistant"))
            out.append(Self.endHeader)
            out.append(contentsOf: blank)
        }
        return out
    }

    /// Prompt tokens for a completions request: begin-of-text, then the text.
    public func renderCompletion(_ prompt: String) -> [UInt32] {
        [Self.beginOfText] + tokenizer.encode(prompt)
    }
}
