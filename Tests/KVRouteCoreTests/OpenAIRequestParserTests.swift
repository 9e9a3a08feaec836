import Foundation
import KVRouteTestSupport
import Testing
@testable import KVRouteCore

/// The request body scanner against what it must read, what it must refuse, and against
/// Foundation's JSONSerialization (the parser it replaced) on the same bodies.
@Suite("OpenAI request parser")
struct OpenAIRequestParserTests {
    static func parse(_ body: String, _ kind: APIKind = .chatCompletions) throws -> (model: String, prompt: PromptContent, stream: Bool) {
        try OpenAIRequestParser.parse(body: Array(body.utf8), apiKind: kind)
    }

    /// Why the scanner refused `body`, or nil when it did not.
    static func syntaxError(_ body: [UInt8]) -> JSONSyntaxError.Code? {
        do {
            _ = try OpenAIRequestParser.parse(body: body, apiKind: .chatCompletions)
            return nil
        } catch let e as KVRouteError {
            return (e.cause as? JSONSyntaxError)?.code
        } catch {
            return nil
        }
    }

    @Test("fields of a chat body: escapes, surrogate pairs, content parts, unknown nested fields", arguments: [
        (#"{"model":"m","messages":[{"role":"user","content":"h\u00e9\n\"q\"\\\/"}]}"#, "m", [ChatMessage(role: "user", content: "hé\n\"q\"\\/")], false),
        (#"{"model":"m","messages":[{"role":"user","content":"\ud83e\udd99 \uD83E\uDD99 🦙"}],"stream":true}"#, "m", [ChatMessage(role: "user", content: "🦙 🦙 🦙")], true),
        (#"{"mod\u0065l":"x\u0000y","messages":[]}"#, "x\u{0}y", [], false),
        (#"{"model":"m","messages":[{"content":[{"type":"text","text":"a"},"b",{"type":"image_url","image_url":{"url":"u"}},{"content":[{"text":"c"}]},{"text":7,"content":"d"},5,null]}]}"#,
         "m", [ChatMessage(role: "", content: "abcd")], false),
        (#"{"tools":[{"function":{"parameters":{"type":"object","properties":{"a":[1,-2.5e+10,true,null,{}]}}}}],"model":"m","messages":[1,"x",{"role":"a","role":"b"}]}"#,
         "m", [ChatMessage(role: "b", content: "")], false),
        ("\u{FEFF} \t\r\n{ \"model\" : \"m\" , \"messages\" : [ { \"role\" : \"user\" , \"content\" : \"x\" } ] , \"stream\" : 1 }\n", "m",
         [ChatMessage(role: "user", content: "x")], true),
        (#"{"model":"a","model":"b","stream":true,"stream":false,"messages":{},"messages":[]}"#, "b", [], false),
    ] as [(String, String, [ChatMessage], Bool)])
    func chatFields(_ body: String, _ model: String, _ messages: [ChatMessage], _ stream: Bool) throws {
        let p = try Self.parse(body)
        #expect(Array(p.model.utf8) == Array(model.utf8))
        #expect(p.prompt == .messages(messages))
        #expect(p.stream == stream)
        RequestParserDifferential(Array(body.utf8), .chatCompletions).check(Array(body.utf8), .chatCompletions)
    }

    @Test("prompts of completions, responses and embeddings", arguments: [
        (#"{"model":"m","prompt":"Once"}"#, APIKind.completions, "Once"),
        (#"{"model":"m","prompt":[1,22,-0,150000,true,false,null,[3],{},"s"]}"#, .completions, "1 22 0 150000 1 0 s"),
        (#"{"model":"m","prompt":[123456789012345678901234567890,-9223372036854775809]}"#, .completions, "123456789012345678901234567890 -9223372036854775809 "),
        (#"{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"q"}]}],"instructions":"be brief"}"#, .responses, "qbe brief"),
        (#"{"model":"m","instructions":["a",{"text":"b"}]}"#, .responses, "ab"),
        (#"{"model":"m","input":"embed me","prompt":5}"#, .embeddings, "embed me"),
        (#"{"model":"m","input":42}"#, .embeddings, ""),
    ])
    func prompts(_ body: String, _ kind: APIKind, _ text: String) throws {
        #expect(try Self.parse(body, kind).prompt == .text(text))
        RequestParserDifferential(Array(body.utf8), kind).check(Array(body.utf8), kind)
    }

    @Test("malformed JSON is refused by both, as invalid_request with the same message", arguments: [
        ("", JSONSyntaxError.Code.unexpectedEnd), ("  ", .unexpectedEnd), ("{", .unexpectedEnd), (#"{"model":"m""#, .unexpectedEnd),
        (#"{"model":"m"} x"#, .trailingData), (#"{} {}"#, .trailingData), ("[] x", .trailingData), ("{}\u{0}", .trailingData),
        ("1", .unexpectedCharacter), (#""s""#, .unexpectedCharacter), ("null", .unexpectedCharacter), ("{,}", .unexpectedCharacter),
        (#"{"a" 1}"#, .unexpectedCharacter), ("{'a':1}", .unexpectedCharacter), (#"{"a":1 "b":2}"#, .unexpectedCharacter),
        ("{\u{0B}}", .unexpectedCharacter), ("{\u{A0}}", .unexpectedCharacter), (#"{"a":tru}"#, .unexpectedCharacter), (#"{"a":nul"#, .unexpectedEnd),
        (#"{"a":01}"#, .unexpectedCharacter), (#"{"a":1.}"#, .invalidNumber), (#"{"a":-}"#, .invalidNumber), (#"{"a":.5}"#, .unexpectedCharacter),
        (#"{"a":+1}"#, .unexpectedCharacter), (#"{"a":1e}"#, .invalidNumber), (#"{"a":1e+}"#, .invalidNumber), (#"{"a":NaN}"#, .unexpectedCharacter),
        (#"{"a":-Infinity}"#, .invalidNumber), (#"{"a":0x10}"#, .unexpectedCharacter),
        (#"{"a":"\x"}"#, .invalidEscape), (#"{"a":"\u00g1"}"#, .invalidEscape), (#"{"a":"\u12"}"#, .invalidEscape), (#"{"a":"\"#, .unexpectedEnd),
        (#"{"a":"\ud800"}"#, .loneSurrogate), (#"{"a":"\udc00"}"#, .loneSurrogate), (#"{"a":"\ud800\u0041"}"#, .loneSurrogate),
        (#"{"a":"\ud800\ud800"}"#, .loneSurrogate), (#"{"model":"m","messages":[{"content":"x\udfff"}]}"#, .loneSurrogate),
        ("{\"a\":\"\u{1}\"}", .controlCharacter), ("{\"a\":\"line\nbreak\"}", .controlCharacter), ("{\"a\":\"tab\t\"}", .controlCharacter),
    ])
    func malformed(_ body: String, _ code: JSONSyntaxError.Code) {
        #expect(Self.syntaxError(Array(body.utf8)) == code)
        for kind in APIKind.allCases {
            let d = RequestParserDifferential(Array(body.utf8), kind)
            #expect(d.ours == .refused(code: "invalid_request", message: "the request body is not valid JSON"))
            d.check(Array(body.utf8), kind)
        }
    }

    @Test("bytes that are not UTF-8 inside strings are refused by both", arguments: FuzzText.invalidUTF8)
    func invalidUTF8(_ bad: [UInt8]) {
        for body in [Array(#"{"model":"m","messages":[{"content":"a"#.utf8) + bad + Array(#"b"}]}"#.utf8), Array(#"{"x"#.utf8) + bad + Array(#"":1}"#.utf8)] {
            #expect(Self.syntaxError(body) == .invalidUTF8)
            RequestParserDifferential(body, .chatCompletions).check(body, .chatCompletions)
        }
    }

    @Test("shapes that are JSON but not a request: same code and message as before", arguments: [
        ("[]", "the request body must be a JSON object"), (#"[{"model":"m"}]"#, "the request body must be a JSON object"),
        (#"{"messages":[]}"#, "the request names no model (field \"model\" is required)"), (#"{"model":""}"#, "\"model\" must be a non-empty string"),
        (#"{"model":null}"#, "\"model\" must be a non-empty string"), (#"{"model":["m"]}"#, "\"model\" must be a non-empty string"),
        (#"{"model":"m"}"#, "\"messages\" must be a list"), (#"{"model":"m","messages":{"role":"user"}}"#, "\"messages\" must be a list"),
        (#"{"model":"m","messages":null}"#, "\"messages\" must be a list"),
    ])
    func shapes(_ body: String, _ message: String) {
        let d = RequestParserDifferential(Array(body.utf8), .chatCompletions)
        guard case .refused(_, let got) = d.ours else { Issue.record("accepted \(body)"); return }
        #expect(got == message)
        d.check(Array(body.utf8), .chatCompletions)
    }

    @Test("a completions prompt that is missing or of the wrong type", arguments: [
        (#"{"model":"m"}"#, "\"prompt\" is required"), (#"{"model":"m","prompt":null}"#, "\"prompt\" must be a string or a list"),
        (#"{"model":"m","prompt":7}"#, "\"prompt\" must be a string or a list"), (#"{"model":"m","prompt":"a","prompt":{}}"#, "\"prompt\" must be a string or a list"),
    ])
    func completionsPrompt(_ body: String, _ message: String) {
        let d = RequestParserDifferential(Array(body.utf8), .completions)
        #expect(d.ours == .refused(code: "invalid_request", message: message))
        d.check(Array(body.utf8), .completions)
    }

    @Test("stream is true for true and for numbers equal to 1, as Foundation's NSNumber read them", arguments: [
        ("true", true), ("false", false), ("1", true), ("1.0", true), ("1e0", true), ("10e-1", true), ("0", false), ("2", false), ("-1", false),
        ("null", false), (#""true""#, false), ("[true]", false), ("{}", false),
    ])
    func stream(_ value: String, _ expected: Bool) throws {
        let body = #"{"model":"m","messages":[],"stream":"# + value + "}"
        #expect(try Self.parse(body).stream == expected)
        RequestParserDifferential(Array(body.utf8), .chatCompletions).check(Array(body.utf8), .chatCompletions)
    }

    @Test("nesting: 512 levels are read, 513 refused, a million cost one error")
    func nesting() {
        func body(_ levels: Int) -> [UInt8] {
            Array((#"{"model":"m","messages":[],"x":"# + String(repeating: "[", count: levels - 1) + String(repeating: "]", count: levels - 1) + "}").utf8)
        }
        #expect(Self.syntaxError(body(512)) == nil)
        #expect(Self.syntaxError(body(513)) == .tooDeep)
        #expect(Self.syntaxError(Array(String(repeating: "[", count: 1_000_000).utf8)) == .tooDeep)
        #expect(Self.syntaxError(Array(("{" + String(repeating: #""a":{"#, count: 100_000)).utf8)) == .tooDeep)
        for levels in [512, 513] { RequestParserDifferential(body(levels), .chatCompletions).check(body(levels), .chatCompletions) }
    }

    /// Where the scanner answers differently from Foundation, and why it is right (RFC 8259).
    @Test("documented differences from Foundation", arguments: [
        // RFC 8259 §4, §5: no trailing comma; Python's json (the engines') refuses it too.
        (Array(#"{"model":"m","messages":[{"role":"user","content":"x"},]}"#.utf8), RequestParserDifferential.Difference.trailingComma),
        (Array(#"{"model":"m","messages":[],}"#.utf8), .trailingComma),
        // RFC 8259 §6: 1e400 is a number; a parser may limit range, but this one never needs the value.
        (Array(#"{"model":"m","messages":[],"temperature":1e400}"#.utf8), .numberBeyondDouble),
        // RFC 8259 §8.1: JSON between systems is UTF-8.
        (Array(#"{"model":"m","messages":[]}"#.utf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }), .notUTF8),
        // Token ids are integers; other numbers keep the client's spelling, not Foundation's.
        (Array(#"{"model":"m","prompt":[1e3,2.50]}"#.utf8), .respelledNumber),
        // U+FEFF in a string is a character (ZERO WIDTH NO-BREAK SPACE), not a byte order mark.
        (Array("{\"model\":\"m\",\"messages\":[{\"content\":\"\u{FEFF}hi\\n\u{FEFF}\"}]}".utf8), .droppedFEFF),
    ])
    func differences(_ body: [UInt8], _ difference: RequestParserDifferential.Difference) throws {
        let kind: APIKind = difference == .respelledNumber ? .completions : .chatCompletions
        let d = RequestParserDifferential(body, kind)
        #expect(d.ours != d.foundation)
        #expect(d.difference == difference)
        if difference == .droppedFEFF {
            #expect(try OpenAIRequestParser.parse(body: body, apiKind: kind).prompt == .messages([ChatMessage(role: "", content: "\u{FEFF}hi\n\u{FEFF}")]))
        }
    }

    @Test("bytes in place (a slice of a larger buffer) read the same as an array")
    func inPlace() throws {
        let body = Array(#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#.utf8)
        let framed = Array("garbage[".utf8) + body + Array("\"tail".utf8)
        let p = try framed.withUnsafeBytes { raw in
            try OpenAIRequestParser.parse(bytes: UnsafeRawBufferPointer(rebasing: raw[8..<(8 + body.count)]), apiKind: .chatCompletions)
        }
        #expect(p.model == "m" && p.stream && p.prompt == .messages([ChatMessage(role: "user", content: "hi")]))
        #expect(throws: KVRouteError.self) {
            try framed.withUnsafeBytes { try OpenAIRequestParser.parse(bytes: UnsafeRawBufferPointer(rebasing: $0[8..<(8 + body.count - 1)]), apiKind: .chatCompletions) }
        }
    }

    @Test("errors carry where the body broke")
    func errorOffset() throws {
        let error = #expect(throws: KVRouteError.self) { try Self.parse(#"{"model":"m","messages":[1,]}"#) }
        #expect(error?.code == .invalidRequest)
        #expect(error?.cause as? JSONSyntaxError == JSONSyntaxError(.trailingComma, at: 27))
        #expect(error?.description.contains("trailing comma at byte 27") == true)
    }
}
