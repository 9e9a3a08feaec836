import Foundation
import KVRouteCore
import KVRouteProto
import KVRouteRouting
import KVRouteTestSupport
import SwiftProtobuf
import Testing
@testable import KVRouteExtProc

/// What `kvroute epp` reads from Envoy: ProcessingRequest protobufs (random and damaged
/// bytes through the decoder), then message sequences in any order through the stream's
/// phases, the body through the OpenAI parser, and response tails through ``ResponseUsage``.
@Suite("Fuzz corpus: ext_proc messages and stream phases")
struct FuzzExtProcTests {
    typealias Request = Envoy_Service_ExtProc_V3_ProcessingRequest
    typealias Mode = Envoy_Extensions_Filters_Http_ExtProc_V3_ProcessingMode.BodySendMode

    /// What the adapter does with each message (as ``ExtProcService/process``), checking the
    /// phases' promises: one routing outcome per stream, nothing after a protocol error.
    static func drive(_ messages: [Request]) {
        var stream = ExtProcStream()
        var hint: [EndpointAddress]?
        var outcomes = 0
        for message in messages {
            let action: ExtProcStream.Action
            switch message.request {
            case .requestHeaders(let h)?:
                let mode = ExtProcMessages.bodyMode(message.protocolConfig.requestBodyMode)
                hint = ExtProcMessages.subsetHint(message.metadataContext)
                let pairs = ExtProcMessages.headers(h.headers)
                action = stream.requestHeaders(
                    pairs, session: SessionKey.normalize(pairs: pairs), endOfStream: h.endOfStream,
                    requestMode: mode, responseMode: ExtProcMessages.bodyMode(message.protocolConfig.responseBodyMode))
            case .requestBody(let b)?: action = stream.requestBody(Array(b.body), endOfStream: b.endOfStream)
            case .requestTrailers?: action = stream.requestTrailers()
            case .responseHeaders(let h)?: action = stream.responseHeaders(endOfStream: h.endOfStream)
            case .responseBody(let b)?: action = stream.responseBody(Array(b.body), endOfStream: b.endOfStream)
            case .responseTrailers?: action = stream.responseTrailers()
            case nil: continue
            }
            switch action {
            case .decide(let info, let body, let phase):
                outcomes += 1
                #expect(body.count <= ExtProcStream.maxBodyBytes)
                do {
                    _ = try ExtProcService.inferenceRequest(info, body: body, phase: phase, subsetHint: hint)
                } catch is KVRouteError {
                } catch {
                    Issue.record("not a KVRouteError: \(error)")
                }
            case .reject(let status, let message):
                outcomes += 1
                _ = ExtProcMessages.immediate(status: status, message: message)
            case .protocolError:
                return
            default: break
            }
            #expect(outcomes <= 1, "a request is routed once")
            #expect(stream.responseTail.count <= ExtProcStream.responseTailBytes)
            if stream.responseComplete { _ = ResponseUsage.parse(tail: stream.responseTail) }
        }
    }

    static let bodies: [FuzzJSON] = [
        .object([("model", .string("m")), ("messages", .array([.object([("role", .string("user")), ("content", .string("hi"))])]))]),
        .object([("model", .string("m")), ("prompt", .string("Once upon a time"))]),
        .object([("model", .string("m")), ("input", .string("x"))]),
    ]

    static func headerValue(_ r: inout FuzzRandom) -> Envoy_Config_Core_V3_HeaderValue {
        var h = Envoy_Config_Core_V3_HeaderValue()
        h.key = r.pick([":path", ":method", "content-type", "x-session-id", "session-id", "cookie", "x-request-id", "x-session-token",
                        "x-gateway-destination-endpoint", "X-Gateway-Destination-Endpoint-Subset", "x-gateway-destination-endpointx", ""])
        if r.chance(0.1) { h.key = FuzzText.string(&r) }
        let value: String = switch h.key {
        case ":path": r.pick(["/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/embeddings", "/", "", "/v1/chat/completions?x=1", "//v1"])
        case "cookie": r.pick(["session-id=s1", "a=b; session-id=", "session-id", ";;;=", "session-id==x"])
        default: FuzzText.string(&r)
        }
        if r.chance(0.2) {
            h.rawValue = Data(r.chance(0.5) ? r.pick(FuzzText.invalidUTF8) : Array(value.utf8))
        } else if r.chance(0.5) {
            h.rawValue = Data(value.utf8)
        } else {
            h.value = value
        }
        return h
    }

    static func hint(_ r: inout FuzzRandom) -> Envoy_Config_Core_V3_Metadata {
        var m = Envoy_Config_Core_V3_Metadata()
        let value: Google_Protobuf_Value = switch r.below(5) {
        case 0: Google_Protobuf_Value(stringValue: r.pick(["10.0.0.1:8000", "10.0.0.1:8000, [::1]:80", "[::1]", ":80", "host:0", "host:99999", "a:b:c", ",,,"]))
        case 1: Google_Protobuf_Value(listValue: Google_Protobuf_ListValue(values: (0..<r.below(4)).map { _ in
            r.chance(0.5) ? Google_Protobuf_Value(stringValue: FuzzText.string(&r)) : Google_Protobuf_Value(numberValue: .nan) }))
        case 2: Google_Protobuf_Value(numberValue: .infinity)
        case 3: Google_Protobuf_Value(structValue: Google_Protobuf_Struct())
        default: Google_Protobuf_Value(boolValue: true)
        }
        var ns = Google_Protobuf_Struct()
        ns.fields["x-gateway-destination-endpoint-subset"] = value
        m.filterMetadata["envoy.lb.subset_hint"] = ns
        return m
    }

    /// One message of any kind, with random flags, modes (unknown ones too) and content.
    static func message(_ r: inout FuzzRandom) -> Request {
        var m = Request()
        switch r.below(7) {
        case 0, 1:
            m.requestHeaders.headers.headers = (0..<r.below(8)).map { _ in headerValue(&r) }
            m.requestHeaders.endOfStream = r.chance(0.3)
            m.protocolConfig.requestBodyMode = r.chance(0.9) ? r.pick([.none, .streamed, .buffered, .bufferedPartial, .fullDuplexStreamed]) : Mode(rawValue: r.below(100))!
            m.protocolConfig.responseBodyMode = r.pick([.none, .streamed, .buffered, .fullDuplexStreamed])
            if r.chance(0.3) { m.metadataContext = hint(&r) }
        case 2:
            m.requestBody.body = Data(r.chance(0.8) ? FuzzJSON.document(&r, seeds: bodies, keys: ["model", "messages", "prompt"]) : FuzzText.randomBytes(&r))
            m.requestBody.endOfStream = r.chance(0.6)
        case 3: m.requestTrailers = Envoy_Service_ExtProc_V3_HttpTrailers()
        case 4:
            m.responseHeaders.endOfStream = r.chance(0.2)
        case 5:
            let usage = #"data: {"choices":[],"usage":{"prompt_tokens":\#(r.pick(FuzzText.numberLiterals)),"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":\#(r.pick(FuzzText.numberLiterals))}}}"#
            let text: [UInt8] = switch r.below(4) {
            case 0: Array(usage.utf8)
            case 1: Array(String(repeating: #""usage":{"#, count: r.length(small: 10, large: 2_000, huge: 20_000)).utf8)
            case 2: FuzzText.damage(Array(usage.utf8), &r)
            default: FuzzText.randomBytes(&r)
            }
            m.responseBody.body = Data(text)
            m.responseBody.endOfStream = r.chance(0.3)
        default: m.responseTrailers = Envoy_Service_ExtProc_V3_HttpTrailers()
        }
        return m
    }

    /// A stream: a plausible order with messages dropped, repeated and moved, or any order.
    static func stream(_ r: inout FuzzRandom) -> [Request] {
        var list = (0..<(1 + r.below(8))).map { _ in message(&r) }
        if r.chance(0.5) {
            list.sort { rank($0) < rank($1) }
            if r.chance(0.5), let i = list.indices.randomElement(using: &r) { list.insert(list[i], at: r.below(list.count + 1)) }
        }
        return list
    }

    static func rank(_ m: Request) -> Int {
        switch m.request {
        case .requestHeaders?: 0
        case .requestBody?: 1
        case .requestTrailers?: 2
        case .responseHeaders?: 3
        case .responseBody?: 4
        default: 5
        }
    }

    @Test("message sequences in any order: duplicate headers, bodies without headers, end_of_stream twice, unknown modes")
    func streams() {
        let ran = Fuzz.run("ext-proc-stream", cases: 3_000, generate: Self.stream, bytes: { list in
            Array(list.map { $0.textFormatString() }.joined(separator: "\n---\n").utf8)
        }, check: Self.drive)
        #expect(ran > 0)
    }

    @Test("protobuf bytes: random, and valid messages damaged, through the decoder and the stream")
    func protobufBytes() {
        let ran = Fuzz.run("ext-proc-protobuf", cases: 3_000) { r -> [UInt8] in
            if r.chance(0.2) { return FuzzText.randomBytes(&r) }
            let bytes: [UInt8] = (try? Self.message(&r).serializedBytes()) ?? []
            return FuzzText.damage(bytes, &r)
        } check: { bytes in
            guard let m = try? Request(serializedBytes: bytes) else { return }
            Self.drive([m, m])
        }
        #expect(ran > 0)
    }

    /// Metadata whose `subset_hint` value nests `depth` structs: `Value{struct_value:
    /// Struct{fields: {"a": Value{…}}}}`, written without recursion.
    static func nestedMetadataRequest(depth: Int) -> [UInt8] {
        func varint(_ v: Int) -> [UInt8] {
            var v = UInt64(v), out: [UInt8] = []
            repeat { out.append(UInt8(v & 0x7F) | (v >= 0x80 ? 0x80 : 0)); v >>= 7 } while v > 0
            return out
        }
        // Lengths from the inside out: the innermost Value is empty.
        var valueLength = [Int](repeating: 0, count: depth + 1)
        var prefixes = [[UInt8]](repeating: [], count: depth)
        for k in stride(from: depth - 1, through: 0, by: -1) {
            let inner = valueLength[k + 1]
            let entry = [0x0A, 0x01, 0x61, 0x12] + varint(inner)
            let entryLength = entry.count + inner
            let structPart = [0x0A] + varint(entryLength)
            let structLength = structPart.count + entryLength
            prefixes[k] = [0x2A] + varint(structLength) + structPart + entry
            valueLength[k] = prefixes[k].count + inner
        }
        let value = prefixes.flatMap { $0 }
        func field(_ number: Int, _ payload: [UInt8]) -> [UInt8] { [UInt8(number << 3 | 2)] + varint(payload.count) + payload }
        let key = Array("x-gateway-destination-endpoint-subset".utf8)
        let hintStruct = field(1, field(1, key) + field(2, value))
        let metadata = field(1, field(1, Array("envoy.lb.subset_hint".utf8)) + field(2, hintStruct))
        var headers = Request()
        headers.requestHeaders.endOfStream = true
        return ((try? headers.serializedBytes()) ?? []) + field(8, metadata)
    }

    @Test("metadata nested 100k deep is refused by the decoder, not a stack overflow", arguments: [20, 150, 100_000])
    func deepMetadata(depth: Int) throws {
        let bytes = Self.nestedMetadataRequest(depth: depth)
        // Each level is three messages (value, struct, map entry) against the decoder's limit of 100.
        if depth < 30 {
            let m = try Request(serializedBytes: bytes)
            Self.drive([m])
            #expect(ExtProcMessages.subsetHint(m.metadataContext) == [])
        } else {
            #expect(throws: (any Error).self) { try Request(serializedBytes: bytes) }
        }
    }

    @Test("request headers: 100k repeated and forged names are taken in linear time")
    func manyHeaders() {
        var s = ExtProcStream()
        let repeated = (0..<100_000).map { _ in ("x-a", "v") }
        let forged = (0..<100_000).map { ("x-gateway-destination-endpoint-\($0)", "10.0.0.1:80") }
        guard case .decide(let info, _, _) = s.requestHeaders(repeated + forged, session: nil, endOfStream: true, requestMode: .none, responseMode: .none) else {
            Issue.record("expected a decision")
            return
        }
        #expect(info.headers["x-a"]?.utf8.count == 100_000 * 2 - 1)
        #expect(info.forgedHeaders.count == 100_000)
    }

    @Test("a negative cached-token count is not usage (it trapped the picker's token counter)")
    func negativeUsage() {
        let tail = #"{"usage":{"prompt_tokens":10,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":-1}}}"#
        #expect(ResponseUsage.parse(tail: Array(tail.utf8)) == nil)
    }

    @Test("response tails: many unclosed \"usage\" objects, odd numbers, damage")
    func responseTails() {
        let usage = #"{"usage":{"prompt_tokens":10,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4}}}"#
        let ran = Fuzz.run("response-usage", cases: 2_000) { r -> [UInt8] in
            switch r.below(4) {
            case 0: return FuzzText.randomBytes(&r)
            case 1: return Array((String(repeating: #""usage": {"x":"#, count: r.length(small: 100, large: 4_000, huge: 8_000)) + usage).utf8)
            default: return FuzzJSON.document(&r, seeds: [FuzzJSON.object([("usage", .object([("prompt_tokens", .number("10")), ("prompt_tokens_details", .object([("cached_tokens", .number("4"))]))]))])],
                                              keys: ["usage", "prompt_tokens", "completion_tokens", "cached_tokens", "prompt_tokens_details"])
            }
        } check: { tail in
            if let u = ResponseUsage.parse(tail: tail) {
                #expect(u.promptTokens >= 0 && u.completionTokens >= 0 && u.cachedTokens >= 0)
            }
        }
        #expect(ran > 0)
        // A tail of unclosed objects still finds the usage at its end.
        let tail = Array((String(repeating: #""usage":{"#, count: 7_000) + usage).utf8.suffix(ExtProcStream.responseTailBytes))
        #expect(ResponseUsage.parse(tail: tail) == ResponseUsage(promptTokens: 10, completionTokens: 2, cachedTokens: 4))
    }
}
