/// Parses an OpenAI request body once into what routing needs: the model, the prompt and
/// whether the client streams.
///
/// One pass of a ``JSONScanner`` over the bytes: the fields routing reads are decoded as they
/// pass, everything else (sampling parameters, tools, images) is checked and skipped without
/// being built. A body is refused as a whole when any part of it is not JSON (RFC 8259).
///
/// Where the answer differs from Foundation's JSONSerialization, which the parser replaced:
/// - a trailing comma (`[1,]`, `{"a":1,}`) is refused; RFC 8259 has none, and the engines'
///   own parsers (Python's `json`) refuse it too;
/// - a number beyond Double (`1e400`) is accepted: it is valid JSON, and only its spelling
///   ever matters here;
/// - a body in UTF-16 or UTF-32 is refused: RFC 8259 §8.1 requires UTF-8 between systems;
/// - a number in a completions prompt list is spelled as written (`1e3 `), where Foundation
///   respelled it (`1000.0 `); integers (token ids, the only numbers engines accept there)
///   read the same either way.
/// - U+FEFF inside a string is kept: Foundation dropped it at the start of a string and
///   after an escape, taking it for a byte order mark (only the body's first bytes can be one).
public enum OpenAIRequestParser {
    public static func parse(body: [UInt8], apiKind: APIKind) throws -> (model: String, prompt: PromptContent, stream: Bool) {
        try body.withUnsafeBytes { try parse(bytes: $0, apiKind: apiKind) }
    }

    /// The same, over bytes in place (a `ByteBuffer`'s readable bytes), without copying them.
    public static func parse(bytes: UnsafeRawBufferPointer, apiKind: APIKind) throws -> (model: String, prompt: PromptContent, stream: Bool) {
        let fields: Fields
        do {
            var scanner = JSONScanner(bytes.assumingMemoryBound(to: UInt8.self))
            fields = try Fields(&scanner, apiKind: apiKind)
        } catch {
            throw KVRouteError(code: .invalidRequest, message: "the request body is not valid JSON", cause: error)
        }
        guard fields.isObject else {
            throw KVRouteError(code: .invalidRequest, message: "the request body must be a JSON object")
        }
        guard case .value(let model) = fields.model, !model.isEmpty else {
            throw KVRouteError(code: .missingModel, message: fields.model == .absent ? "the request names no model (field \"model\" is required)" : "\"model\" must be a non-empty string")
        }
        let prompt: PromptContent
        switch apiKind {
        case .chatCompletions:
            guard case .value(let messages) = fields.messages else {
                throw KVRouteError(code: .invalidRequest, message: "\"messages\" must be a list")
            }
            prompt = .messages(messages)
        case .completions:
            switch fields.prompt {
            case .value(let text): prompt = .text(text)
            case .absent: throw KVRouteError(code: .invalidRequest, message: "\"prompt\" is required")
            case .otherType: throw KVRouteError(code: .invalidRequest, message: "\"prompt\" must be a string or a list")
            }
        case .responses:
            prompt = .text(fields.input + fields.instructions)
        case .embeddings:
            prompt = .text(fields.input)
        }
        return (model, prompt, fields.stream)
    }
}
