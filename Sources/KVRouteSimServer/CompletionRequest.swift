import Foundation
import KVRouteEngineSim

/// A parsed `/v1/chat/completions` or `/v1/completions` body: only what the engine uses;
/// other OpenAI fields (temperature, top_p, …) are accepted and ignored.
struct CompletionRequest: Sendable {
    enum Kind: Sendable { case chat, completion }
    enum Prompt: Sendable {
        case messages([ChatTurn])
        case text(String)
        case tokens([UInt32])
    }

    var kind: Kind
    var model: String
    var prompt: Prompt
    var maxTokens: Int?
    var stream: Bool
    var includeUsage: Bool

    /// Parses and checks a body; every problem is an ``OpenAIError`` naming the field.
    static func parse(_ body: Data, kind: Kind) throws(OpenAIError) -> CompletionRequest {
        let any: Any
        do {
            any = try JSONSerialization.jsonObject(with: body, options: [])
        } catch {
            throw .badRequest("Invalid JSON in request body: \(Self.describe(error))")
        }
        guard let json = any as? [String: Any] else {
            throw .badRequest("The request body must be a JSON object")
        }
        guard let modelValue = json["model"] else {
            throw .badRequest("Field required: model", param: "model")
        }
        guard let model = modelValue as? String, !model.isEmpty else {
            throw .badRequest("model must be a non-empty string", param: "model")
        }
        let prompt: Prompt
        switch kind {
        case .chat:
            guard let raw = json["messages"] else { throw .badRequest("Field required: messages", param: "messages") }
            guard let list = raw as? [Any] else { throw .badRequest("messages must be a list", param: "messages") }
            guard !list.isEmpty else { throw .badRequest("messages must contain at least one message", param: "messages") }
            var turns: [ChatTurn] = []
            for (i, item) in list.enumerated() {
                guard let m = item as? [String: Any], let role = m["role"] as? String else {
                    throw .badRequest("messages[\(i)] must be an object with a string role", param: "messages")
                }
                turns.append(ChatTurn(role: role, content: try content(m["content"], index: i)))
            }
            prompt = .messages(turns)
        case .completion:
            guard let raw = json["prompt"] else { throw .badRequest("Field required: prompt", param: "prompt") }
            if let s = raw as? String {
                prompt = .text(s)
            } else if let list = raw as? [Any], list.count == 1, let s = list[0] as? String {
                prompt = .text(s)
            } else if let list = raw as? [Any], !list.isEmpty, list.allSatisfy({ $0 is NSNumber }) {
                let ids = list.compactMap { ($0 as? NSNumber)?.int64Value }
                guard ids.allSatisfy({ $0 >= 0 && $0 <= Int64(UInt32.max) }) else {
                    throw .badRequest("prompt token ids must be non-negative integers", param: "prompt")
                }
                prompt = .tokens(ids.map { UInt32($0) })
            } else if let list = raw as? [Any], list.count > 1 {
                throw .badRequest("batched prompts are not supported; send one prompt per request", param: "prompt")
            } else {
                throw .badRequest("prompt must be a string, a list with one string, or a list of token ids", param: "prompt")
            }
        }
        var maxTokens: Int?
        for key in ["max_completion_tokens", "max_tokens"] {
            guard let v = json[key], !(v is NSNull) else { continue }
            guard let n = v as? NSNumber, !Self.isBool(n), n.doubleValue == n.doubleValue.rounded() else {
                throw .badRequest("\(key) must be an integer", param: key)
            }
            guard n.int64Value >= 1 else { throw .badRequest("\(key) must be at least 1, got \(n.int64Value)", param: key) }
            maxTokens = Int(clamping: n.int64Value)
            break
        }
        if let n = json["n"] as? NSNumber, n.intValue != 1 {
            throw .badRequest("only n = 1 is supported", param: "n")
        }
        let stream = (json["stream"] as? Bool) ?? false
        let options = json["stream_options"] as? [String: Any]
        let includeUsage = (options?["include_usage"] as? Bool) ?? false
        return CompletionRequest(kind: kind, model: model, prompt: prompt, maxTokens: maxTokens, stream: stream, includeUsage: includeUsage)
    }

    /// Message content: a string, or a list of `{"type": "text", "text": …}` parts.
    private static func content(_ value: Any?, index: Int) throws(OpenAIError) -> String {
        switch value {
        case let s as String: return s
        case nil, is NSNull: return ""
        case let parts as [Any]:
            var text = ""
            for p in parts {
                guard let part = p as? [String: Any], (part["type"] as? String) == "text", let t = part["text"] as? String else {
                    throw .badRequest("messages[\(index)].content: only text parts are supported", param: "messages")
                }
                text += t
            }
            return text
        default:
            throw .badRequest("messages[\(index)].content must be a string or a list of text parts", param: "messages")
        }
    }

    private static func isBool(_ n: NSNumber) -> Bool {
        let t = String(cString: n.objCType)
        return t == "c" || t == "B"
    }

    private static func describe(_ error: any Error) -> String {
        let ns = error as NSError
        return (ns.userInfo[NSDebugDescriptionErrorKey] as? String) ?? ns.localizedDescription
    }
}
