import Foundation
@testable import KVRouteCore

/// The request parser as it was before the scanner: a full JSONSerialization tree, then the
/// fields read out of it. Kept here as the reference the scanner is compared against.
enum FoundationRequestParser {
    struct Parsed {
        var model: String
        var prompt: PromptContent
        var stream: Bool
        /// A number in a completions prompt list that Foundation respelled (`1e3` → `1000.0`).
        var respelledNumber: Bool
    }

    static func parse(body: [UInt8], apiKind: APIKind) throws -> Parsed {
        let any: Any
        do {
            any = try JSONSerialization.jsonObject(with: Data(body), options: [])
        } catch {
            throw KVRouteError(code: .invalidRequest, message: "the request body is not valid JSON", cause: error)
        }
        guard let json = any as? [String: Any] else {
            throw KVRouteError(code: .invalidRequest, message: "the request body must be a JSON object")
        }
        guard let model = json["model"] as? String, !model.isEmpty else {
            throw KVRouteError(code: .missingModel, message: json["model"] == nil ? "the request names no model (field \"model\" is required)" : "\"model\" must be a non-empty string")
        }
        let stream = (json["stream"] as? Bool) ?? false
        var respelled = false
        let prompt: PromptContent
        switch apiKind {
        case .chatCompletions:
            guard let list = json["messages"] as? [Any] else {
                throw KVRouteError(code: .invalidRequest, message: "\"messages\" must be a list")
            }
            prompt = .messages(list.compactMap { item -> ChatMessage? in
                guard let m = item as? [String: Any] else { return nil }
                return ChatMessage(role: (m["role"] as? String) ?? "", content: Self.text(m["content"]))
            })
        case .completions:
            switch json["prompt"] {
            case let s as String: prompt = .text(s)
            case let list as [Any]:
                prompt = .text(list.map { item -> String in
                    if let s = item as? String { return s }
                    if let n = item as? NSNumber {
                        if n.stringValue.contains(where: { !$0.isNumber && $0 != "-" }) { respelled = true }
                        return n.stringValue + " "
                    }
                    return ""
                }.joined())
            case nil: throw KVRouteError(code: .invalidRequest, message: "\"prompt\" is required")
            default: throw KVRouteError(code: .invalidRequest, message: "\"prompt\" must be a string or a list")
            }
        case .responses:
            prompt = .text(Self.text(json["input"]) + Self.text(json["instructions"]))
        case .embeddings:
            prompt = .text(Self.text(json["input"]))
        }
        return Parsed(model: model, prompt: prompt, stream: stream, respelledNumber: respelled)
    }

    static func text(_ value: Any?) -> String {
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
}
