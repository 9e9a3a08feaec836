import Foundation
import KVRouteTestSupport
import Testing
@testable import KVRouteCore

/// One body through both parsers: the scanner and the Foundation reference.
struct RequestParserDifferential {
    /// What a parser made of a body, compared byte for byte (not by Swift's canonical
    /// String equality, which would hide a wrong normalisation).
    enum Outcome: Equatable, CustomStringConvertible {
        case parsed(model: [UInt8], prompt: [[UInt8]], stream: Bool)
        case refused(code: String, message: String)

        init(model: String, prompt: PromptContent, stream: Bool) {
            let parts: [[UInt8]] = switch prompt {
            case .text(let t): [Array(t.utf8)]
            case .messages(let m): m.flatMap { [Array($0.role.utf8), Array($0.content.utf8)] } + [[0xFF]]
            case .none: []
            }
            self = .parsed(model: Array(model.utf8), prompt: parts, stream: stream)
        }

        /// The outcome with every U+FEFF (EF BB BF) taken out of the strings.
        var withoutFEFF: Outcome {
            guard case .parsed(let model, let prompt, let stream) = self else { return self }
            func strip(_ s: [UInt8]) -> [UInt8] {
                Array(String(decoding: s, as: UTF8.self).unicodeScalars.filter { $0 != "\u{FEFF}" }.map(String.init).joined().utf8)
            }
            return .parsed(model: strip(model), prompt: prompt.map(strip), stream: stream)
        }

        var description: String {
            switch self {
            case .parsed(let model, let prompt, let stream):
                "parsed(model: \(String(decoding: model, as: UTF8.self).debugDescription), stream: \(stream), prompt: \(prompt.map { String(decoding: $0.prefix(80), as: UTF8.self).debugDescription }))"
            case .refused(let code, let message): "refused(\(code): \(message))"
            }
        }
    }

    /// A place where the two may answer differently, on purpose (see OpenAIRequestParser).
    enum Difference: Equatable {
        case trailingComma
        case numberBeyondDouble
        case notUTF8
        case respelledNumber
        /// Foundation drops U+FEFF (ZERO WIDTH NO-BREAK SPACE) at the start of a string and
        /// right after an escape: it decodes each stretch between escapes on its own and
        /// takes a leading U+FEFF for a byte order mark. In a string it is a character.
        case droppedFEFF
    }

    let ours: Outcome
    let foundation: Outcome
    /// Set when the outcomes differ for a documented reason.
    let difference: Difference?

    init(_ body: [UInt8], _ kind: APIKind) {
        var oursCause: (any Error)?
        do {
            let p = try OpenAIRequestParser.parse(body: body, apiKind: kind)
            ours = Outcome(model: p.model, prompt: p.prompt, stream: p.stream)
        } catch let e as KVRouteError {
            ours = .refused(code: e.code.name, message: e.message)
            oursCause = e.cause
        } catch {
            ours = .refused(code: "not a KVRouteError", message: "\(error)")
        }
        var foundationCause: (any Error)?
        var respelled = false
        do {
            let p = try FoundationRequestParser.parse(body: body, apiKind: kind)
            foundation = Outcome(model: p.model, prompt: p.prompt, stream: p.stream)
            respelled = p.respelledNumber
        } catch let e as KVRouteError {
            foundation = .refused(code: e.code.name, message: e.message)
            foundationCause = e.cause
        } catch {
            foundation = .refused(code: "not a KVRouteError", message: "\(error)")
        }
        difference = Self.difference(body, ours, oursCause, foundation, foundationCause, respelled)
    }

    static func difference(
        _ body: [UInt8], _ ours: Outcome, _ oursCause: (any Error)?, _ foundation: Outcome, _ foundationCause: (any Error)?, _ respelled: Bool
    ) -> Difference? {
        guard ours != foundation else { return nil }
        if case .refused = ours {
            // Foundation read further than we did: what stopped us must be one of ours.
            if (oursCause as? JSONSyntaxError)?.code == .trailingComma { return .trailingComma }
            if Self.foundationReadsAnotherEncoding(body) { return .notUTF8 }
        }
        // Foundation refused the number; we went on to read the request (and maybe refuse it
        // for what it asks, not for its JSON).
        if let message = (foundationCause as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String,
            message.contains("not representable")
        {
            return .numberBeyondDouble
        }
        if ours.withoutFEFF == foundation.withoutFEFF { return .droppedFEFF }
        if case .parsed(let model, _, _) = ours.withoutFEFF, model.isEmpty,
            foundation == .refused(code: KVRouteError.Code.missingModel.name, message: "\"model\" must be a non-empty string")
        {
            return .droppedFEFF
        }
        if respelled, case .parsed(let m1, _, let s1) = ours, case .parsed(let m2, _, let s2) = foundation, m1 == m2, s1 == s2 {
            return .respelledNumber
        }
        return nil
    }

    /// Foundation guesses UTF-16 or UTF-32 from a byte order mark or zero bytes at the start.
    static func foundationReadsAnotherEncoding(_ body: [UInt8]) -> Bool {
        if body.starts(with: [0xFE, 0xFF]) || body.starts(with: [0xFF, 0xFE]) { return true }
        return body.prefix(4).contains(0)
    }

    /// Records a disagreement that no documented difference explains.
    func check(_ body: [UInt8], _ kind: APIKind, sourceLocation: SourceLocation = #_sourceLocation) {
        if ours != foundation && difference == nil {
            Issue.record(
                "\(kind): scanner \(ours) but Foundation \(foundation) for \(String(decoding: body.prefix(300), as: UTF8.self).debugDescription)",
                sourceLocation: sourceLocation)
        }
        if case .refused(let code, _) = ours, code == "not a KVRouteError" {
            Issue.record("\(kind): \(ours)", sourceLocation: sourceLocation)
        }
    }
}

/// Writes JSON the way many different clients do: any whitespace between tokens, escapes
/// where none are needed (`\u` for plain letters, surrogate pairs for emoji, `\/`).
struct VariedJSONWriter {
    var r: FuzzRandom

    mutating func write(_ value: FuzzJSON) -> [UInt8] {
        var out: [UInt8] = []
        if r.chance(0.05) { out += [0xEF, 0xBB, 0xBF] }
        space(&out)
        write(value, into: &out)
        space(&out)
        return out
    }

    mutating func space(_ out: inout [UInt8]) {
        guard r.chance(0.3) else { return }
        out += Array(r.pick([" ", "\n", "\t", "\r\n  ", "  \n\t "]).utf8)
    }

    mutating func write(_ value: FuzzJSON, into out: inout [UInt8]) {
        switch value {
        case .null, .bool, .number: out += value.bytes
        case .string(let s): string(s, into: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            space(&out)
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")); space(&out) }
                write(item, into: &out)
                space(&out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let fields):
            out.append(UInt8(ascii: "{"))
            space(&out)
            for (i, (key, item)) in fields.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")); space(&out) }
                string(key, into: &out)
                space(&out)
                out.append(UInt8(ascii: ":"))
                space(&out)
                write(item, into: &out)
                space(&out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    mutating func string(_ s: String, into out: inout [UInt8]) {
        let escapeAll = r.chance(0.05)
        out.append(UInt8(ascii: "\""))
        for scalar in s.unicodeScalars {
            let v = scalar.value
            switch scalar {
            case "\"": out += Array(#"\""#.utf8)
            case "\\": out += Array(#"\\"#.utf8)
            case "/" where r.chance(0.5): out += Array(#"\/"#.utf8)
            case "\n" where r.chance(0.7): out += Array(#"\n"#.utf8)
            case "\t" where r.chance(0.7): out += Array(#"\t"#.utf8)
            case "\r" where r.chance(0.7): out += Array(#"\r"#.utf8)
            case "\u{08}" where r.chance(0.7): out += Array(#"\b"#.utf8)
            case "\u{0C}" where r.chance(0.7): out += Array(#"\f"#.utf8)
            case _ where v < 0x20 || escapeAll || r.chance(0.03):
                if v >= 0x10000 {
                    let u = v - 0x10000
                    hex(0xD800 + (u >> 10), into: &out)
                    hex(0xDC00 + (u & 0x3FF), into: &out)
                } else {
                    hex(v, into: &out)
                }
            default: out += Array(String(scalar).utf8)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    mutating func hex(_ unit: UInt32, into out: inout [UInt8]) {
        var digits = String(unit, radix: 16, uppercase: r.chance(0.5))
        digits = String(repeating: "0", count: 4 - digits.count) + digits
        out += Array(("\\u" + digits).utf8)
    }
}

/// OpenAI request bodies of every kind, with the shapes clients really send and some they
/// should not: content lists, tool calls, images, token-id prompts, unknown nested fields.
enum OpenAIBodyGenerator {
    static let models = ["meta-llama/Llama-3.2-3B-Instruct", "m", "Qwen/Qwen3-0.6B", "ünïcode-模型", ""]
    static let unknownKeys = [
        "max_tokens", "temperature", "top_p", "n", "user", "lora", "cache_salt", "stream_options", "tools", "tool_choice", "response_format",
        "logit_bias", "seed", "stop", "metadata", "text", "type", "role", "content",
    ]

    static func body(_ r: inout FuzzRandom) -> FuzzJSON {
        var fields: [(String, FuzzJSON)] = [("model", r.chance(0.9) ? .string(r.pick(models)) : r.chance(0.5) ? .string(FuzzText.string(&r, maxLength: 20)) : .random(&r, depth: 1))]
        if r.chance(0.6) {
            fields.append(("stream", r.pick([.bool(true), .bool(false), .number("1"), .number("0"), .number("1.0"), .number("1e0"), .number("2"), .number("-0"), .null, .string("true")])))
        }
        if r.chance(0.3) { fields.append(("stream_options", .object([("include_usage", .bool(r.chance(0.5)))]))) }
        if r.chance(0.8) { fields.append(("messages", r.chance(0.95) ? .array((0..<r.below(6)).map { _ in message(&r) }) : .random(&r, depth: 1))) }
        if r.chance(0.5) { fields.append(("prompt", prompt(&r))) }
        if r.chance(0.4) { fields.append(("input", r.chance(0.5) ? content(&r) : .array((0..<r.below(4)).map { _ in message(&r) }))) }
        if r.chance(0.3) { fields.append(("instructions", content(&r))) }
        for _ in 0..<r.below(5) {
            fields.append((r.chance(0.7) ? r.pick(unknownKeys) : FuzzText.string(&r, maxLength: 10), .random(&r, depth: 3)))
        }
        fields.shuffle(using: &r)
        if r.chance(0.1), let repeated = fields.randomElement(using: &r) {
            fields.insert((repeated.0, r.chance(0.5) ? .random(&r, depth: 2) : repeated.1), at: r.below(fields.count + 1))
        }
        return .object(fields)
    }

    static func message(_ r: inout FuzzRandom) -> FuzzJSON {
        guard r.chance(0.95) else { return .random(&r, depth: 2) }
        var fields: [(String, FuzzJSON)] = []
        if r.chance(0.95) { fields.append(("role", r.chance(0.9) ? .string(r.pick(["system", "user", "assistant", "tool", "developer"])) : .random(&r, depth: 1))) }
        if r.chance(0.9) { fields.append(("content", content(&r))) }
        if r.chance(0.1) {
            fields.append(("tool_calls", .array([.object([("id", .string("call_1")), ("type", .string("function")), ("function", .object([
                ("name", .string("lookup")), ("arguments", .string(#"{"q": "x\"y", "n": [1, 2.5e-3]}"#)),
            ]))])])))
        }
        if r.chance(0.1) { fields.append(("name", .string(FuzzText.string(&r, maxLength: 8)))) }
        fields.shuffle(using: &r)
        return .object(fields)
    }

    static func content(_ r: inout FuzzRandom) -> FuzzJSON {
        switch r.below(10) {
        case 0: return .random(&r, depth: 2)
        case 1, 2, 3: return .array((0..<r.below(5)).map { _ in part(&r) })
        default: return .string(FuzzText.string(&r))
        }
    }

    static func part(_ r: inout FuzzRandom) -> FuzzJSON {
        switch r.below(10) {
        case 0: return .string(FuzzText.string(&r))
        case 1: return .object([("type", .string("image_url")), ("image_url", .object([("url", .string("data:image/png;base64,iVBORw0KGgo=")), ("detail", .string("low"))]))])
        case 2: return .object([("type", .string("input_text")), ("content", content(&r))])
        case 3: return .random(&r, depth: 2)
        case 4: return .object([("type", .string("text")), ("text", .random(&r, depth: 1)), ("content", .string(FuzzText.string(&r, maxLength: 12)))])
        default:
            var fields: [(String, FuzzJSON)] = [("type", .string(r.pick(["text", "input_text"]))), ("text", .string(FuzzText.string(&r)))]
            if r.chance(0.2) { fields.append(("cache_control", .object([("type", .string("ephemeral"))]))) }
            fields.shuffle(using: &r)
            return .object(fields)
        }
    }

    static func prompt(_ r: inout FuzzRandom) -> FuzzJSON {
        switch r.below(8) {
        case 0: return .random(&r, depth: 2)
        case 1: return .array((0..<r.below(8)).map { _ in .number(String(r.below(150_000))) })
        case 2: return .array((0..<r.below(4)).map { _ in .string(FuzzText.string(&r)) })
        case 3:
            return .array((0..<r.below(6)).map { _ in
                r.pick([.number(r.pick(FuzzText.numberLiterals)), .bool(r.chance(0.5)), .null, .array([.number("1")]), .object([]), .string("s")])
            })
        default: return .string(FuzzText.string(&r))
        }
    }
}
