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
    /// `cache_salt`: keys the first block's hash, so prefixes are shared only within a salt.
    var cacheSalt: String? = nil
    /// vLLM's `ignore_eos`: the answer runs to `max_tokens` whatever the end-of-sequence draw.
    var ignoreEOS = false
    /// vLLM's `min_tokens`: no end of sequence before this many tokens.
    var minTokens = 0

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
                var ids: [UInt32] = []
                ids.reserveCapacity(list.count)
                for item in list {
                    guard let n = item as? NSNumber, !isBool(n), let id = integer(n), let token = UInt32(exactly: id.value) else {
                        throw .badRequest("prompt token ids must be integers in 0...\(UInt32.max)", param: "prompt")
                    }
                    ids.append(token)
                }
                prompt = .tokens(ids)
            } else if let list = raw as? [Any], list.count > 1 {
                throw .badRequest("batched prompts are not supported; send one prompt per request", param: "prompt")
            } else {
                throw .badRequest("prompt must be a string, a list with one string, or a list of token ids", param: "prompt")
            }
        }
        var maxTokens: Int?
        for key in ["max_completion_tokens", "max_tokens"] {
            guard let n = try integer(json, key) else { continue }
            guard n >= 1 else { throw .badRequest("\(key) must be at least 1, got \(n)", param: key) }
            maxTokens = n
            break
        }
        try checkSamplingIntegers(json, kind: kind, maxTokens: maxTokens)
        let stream = (json["stream"] as? Bool) ?? false
        let options = json["stream_options"] as? [String: Any]
        let includeUsage = (options?["include_usage"] as? Bool) ?? false
        var cacheSalt: String?
        if let v = json["cache_salt"], !(v is NSNull) {
            // vLLM: "Parameter 'cache_salt' must be a non-empty string if provided."
            guard let salt = v as? String, !salt.isEmpty else {
                throw .badRequest("Parameter 'cache_salt' must be a non-empty string if provided.", param: "cache_salt")
            }
            cacheSalt = salt
        }
        var ignoreEOS = false
        if let v = json["ignore_eos"], !(v is NSNull) {
            guard let b = v as? NSNumber, isBool(b) else { throw .badRequest("ignore_eos must be a boolean", param: "ignore_eos") }
            ignoreEOS = b.boolValue
        }
        return CompletionRequest(
            kind: kind, model: model, prompt: prompt, maxTokens: maxTokens, stream: stream, includeUsage: includeUsage, cacheSalt: cacheSalt,
            ignoreEOS: ignoreEOS, minTokens: max(0, (try integer(json, "min_tokens")) ?? 0))
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

    /// The integer sampling fields the engine does not use, checked as vLLM checks them so a
    /// client learns of a bad value rather than having it ignored.
    private static func checkSamplingIntegers(_ json: [String: Any], kind: Kind, maxTokens: Int?) throws(OpenAIError) {
        if let n = try integer(json, "n") {
            guard n >= 1 else { throw .badRequest("n must be at least 1, got \(n).", param: "n") }
            guard n == 1 else { throw .badRequest("only n = 1 is supported", param: "n") }
        }
        if let m = try integer(json, "min_tokens") {
            guard m >= 0 else { throw .badRequest("min_tokens must be greater than or equal to 0, got \(m).", param: "min_tokens") }
            if let maxTokens, m > maxTokens {
                throw .badRequest("min_tokens must be less than or equal to max_tokens=\(maxTokens), got \(m).", param: "min_tokens")
            }
        }
        // Chat takes `logprobs` as a flag and the count as `top_logprobs`; completions take the count.
        let logprobsKey = kind == .chat ? "top_logprobs" : "logprobs"
        if let l = try integer(json, logprobsKey) {
            guard l >= 0 else { throw .badRequest("\(logprobsKey) must be non-negative, got \(l).", param: logprobsKey) }
            guard l <= maxLogprobs else {
                throw .badRequest("Requested sample logprobs of \(l), which is greater than max allowed: \(maxLogprobs)", param: logprobsKey)
            }
        }
        if let v = json["seed"], !(v is NSNull) {
            guard let n = v as? NSNumber, !isBool(n), let seed = integer(n) else { throw .badRequest("seed must be an integer", param: "seed") }
            guard seed.exact else { throw .badRequest("seed must be in \(Int64.min)...\(Int64.max)", param: "seed") }
        }
    }

    /// vLLM's default `max_logprobs`.
    static let maxLogprobs = 20

    /// An integer field: nil when absent or null, a 400 naming the field when not a whole
    /// number. Values past Int's range saturate (vLLM's Python ints have no bound, so the
    /// value is valid JSON and its checks, not a trap, decide).
    static func integer(_ json: [String: Any], _ key: String) throws(OpenAIError) -> Int? {
        guard let v = json[key], !(v is NSNull) else { return nil }
        guard let n = v as? NSNumber, !isBool(n), let i = integer(n) else {
            throw .badRequest("\(key) must be an integer", param: key)
        }
        return i.value
    }

    /// A JSON number as an Int when it is whole: `exact` is false when it lay outside Int's
    /// range and was saturated. Nil for fractions, NaN and infinities.
    static func integer(_ n: NSNumber) -> (value: Int, exact: Bool)? {
        switch String(cString: n.objCType) {
        case "c", "s", "i", "l", "q":
            return (Int(n.int64Value), true)
        case "C", "S", "I", "L", "Q":
            let u = n.uint64Value
            return u <= UInt64(Int.max) ? (Int(u), true) : (Int.max, false)
        default:
            let d = n.doubleValue
            guard d.isFinite, d == d.rounded() else { return nil }
            if let exact = Int(exactly: d) { return (exact, true) }
            return (d < 0 ? Int.min : Int.max, false)
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
