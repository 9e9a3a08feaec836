import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import KVRouteCore
import KVRouteExtProc
import KVRouteProto
import KVRouteTestSupport
import SwiftProtobuf
import Testing

typealias ProcessingRequest = Envoy_Service_ExtProc_V3_ProcessingRequest
typealias ProcessingResponse = Envoy_Service_ExtProc_V3_ProcessingResponse

/// The ext_proc protocol against `kvroute epp` over gRPC, with Envoy's messages written by
/// hand: every body mode, errors, the subset hint, the response side and health.
@Suite("kvroute epp over gRPC", .serialized)
struct ExtProcServiceTests {
    static func headers(_ pairs: [(String, String)], mode: Envoy_Extensions_Filters_Http_ExtProc_V3_ProcessingMode.BodySendMode,
                        responseMode: Envoy_Extensions_Filters_Http_ExtProc_V3_ProcessingMode.BodySendMode = .none,
                        endOfStream: Bool = false, hint: [String]? = nil) -> ProcessingRequest {
        var r = ProcessingRequest()
        r.requestHeaders.headers.headers = ([(":method", "POST"), (":path", "/v1/chat/completions")] + pairs).map { k, v in
            var h = Envoy_Config_Core_V3_HeaderValue()
            h.key = k
            h.rawValue = Data(v.utf8)
            return h
        }
        r.requestHeaders.endOfStream = endOfStream
        r.protocolConfig.requestBodyMode = mode
        r.protocolConfig.responseBodyMode = responseMode
        if let hint {
            var ns = Google_Protobuf_Struct()
            ns.fields["x-gateway-destination-endpoint-subset"] = Google_Protobuf_Value(listValue: Google_Protobuf_ListValue(values: hint.map { Google_Protobuf_Value(stringValue: $0) }))
            r.metadataContext.filterMetadata["envoy.lb.subset_hint"] = ns
        }
        return r
    }

    static func body(_ text: String, endOfStream: Bool = true) -> ProcessingRequest {
        var r = ProcessingRequest()
        r.requestBody.body = Data(text.utf8)
        r.requestBody.endOfStream = endOfStream
        return r
    }

    static func exchange(
        _ port: Int, _ messages: [ProcessingRequest], security: HTTP2ClientTransport.Posix.TransportSecurity = .plaintext
    ) async throws -> [ProcessingResponse] {
        try await withGRPCClient(transport: try .http2NIOPosix(
            target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: security)) { client in
            let processor = Envoy_Service_ExtProc_V3_ExternalProcessor.Client(wrapping: client)
            let request = StreamingClientRequest<ProcessingRequest>(producer: { w in for m in messages { try await w.write(m) } })
            return try await processor.process(request: request) { response in
                var out: [ProcessingResponse] = []
                for try await m in response.messages { out.append(m) }
                return out
            }
        }
    }

    static func destination(_ c: Envoy_Service_ExtProc_V3_CommonResponse) -> String? {
        c.headerMutation.setHeaders.first { $0.header.key == ExtProcStream.destinationHeader }.map { String(decoding: $0.header.rawValue, as: UTF8.self) }
    }

    static func header(_ c: Envoy_Service_ExtProc_V3_CommonResponse, _ name: String) -> String? {
        c.headerMutation.setHeaders.first { $0.header.key == name }.map { String(decoding: $0.header.rawValue, as: UTF8.self) }
    }

    static func metadataDestination(_ r: ProcessingResponse) -> String? {
        guard case .structValue(let lb)? = r.dynamicMetadata.fields["envoy.lb"]?.kind,
              case .stringValue(let s)? = lb.fields[ExtProcStream.destinationHeader]?.kind else { return nil }
        return s
    }

    static let chatBody = #"{"model":"meta-llama/Llama-3.2-3B-Instruct","messages":[{"role":"user","content":"Say hi ☕"}],"max_tokens":4}"#

    @Test("headers only: the destination header and envoy.lb metadata, forged headers removed, route cache cleared, sessions sticky")
    func headersOnly() async throws {
        try await withSimCluster(engines: 3) { _, urls in
            try await withPicker(engines: urls) { picker in
                let engines = Set(urls.map { $0.replacingOccurrences(of: "http://", with: "") })
                var seen = Set<String>()
                for _ in 0..<5 {
                    let out = try await Self.exchange(picker.configuration.grpcPort, [
                        Self.headers([("x-session-id", "abc"), ("x-gateway-destination-endpoint", "10.0.0.1:80")], mode: .none)])
                    try #require(out.count == 1)
                    let common = out[0].requestHeaders.response
                    let dest = try #require(Self.destination(common))
                    #expect(engines.contains(dest))
                    #expect(common.clearRouteCache_p)
                    #expect(common.headerMutation.removeHeaders == ["x-gateway-destination-endpoint"])
                    let meta = try #require(Self.metadataDestination(out[0]))
                    #expect(meta.split(separator: ",").first.map(String.init) == dest)
                    #expect(meta.split(separator: ",").count == 3)
                    seen.insert(dest)
                }
                #expect(seen.count == 1, "one session, one engine")
            }
        }
    }

    @Test("BUFFERED: the headers continue, the body is answered with the routing")
    func buffered() async throws {
        try await withSimCluster(engines: 2) { _, urls in
            try await withPicker(engines: urls) { picker in
                let out = try await Self.exchange(picker.configuration.grpcPort, [Self.headers([], mode: .buffered), Self.body(Self.chatBody)])
                try #require(out.count == 2)
                #expect(Self.destination(out[0].requestHeaders.response) == nil)
                #expect(Self.destination(out[1].requestBody.response) != nil)
                #expect(out[1].requestBody.response.clearRouteCache_p)
            }
        }
    }

    @Test("STREAMED: decided at the headers, body chunks continue")
    func streamed() async throws {
        try await withSimCluster(engines: 2) { _, urls in
            try await withPicker(engines: urls) { picker in
                let out = try await Self.exchange(picker.configuration.grpcPort, [
                    Self.headers([], mode: .streamed), Self.body("{\"model\":", endOfStream: false), Self.body("\"m\"}")])
                try #require(out.count == 3)
                #expect(Self.destination(out[0].requestHeaders.response) != nil)
                #expect(out[1].requestBody.response.hasHeaderMutation == false)
            }
        }
    }

    @Test("FULL_DUPLEX_STREAMED: headers with routing and content-length, then the whole body unchanged")
    func fullDuplex() async throws {
        try await withSimCluster(engines: 2) { _, urls in
            try await withPicker(engines: urls) { picker in
                let bytes = Array(Self.chatBody.utf8)
                let cut = bytes.count / 3
                let out = try await Self.exchange(picker.configuration.grpcPort, [
                    Self.headers([("transfer-encoding", "chunked")], mode: .fullDuplexStreamed),
                    Self.body(String(decoding: bytes[..<cut], as: UTF8.self), endOfStream: false),
                    Self.body(String(decoding: bytes[cut...], as: UTF8.self))])
                try #require(out.count == 2)
                let h = out[0].requestHeaders.response
                #expect(Self.destination(h) != nil)
                #expect(Self.header(h, "content-length") == String(bytes.count))
                #expect(h.headerMutation.removeHeaders.contains("transfer-encoding"))
                let streamed = out[1].requestBody.response.bodyMutation.streamedResponse
                #expect(Array(streamed.body) == bytes)
                #expect(streamed.endOfStream)
            }
        }
    }

    @Test("errors: 400 for a bad body or no model, 503 when the subset hint allows nothing")
    func errors() async throws {
        try await withSimCluster(engines: 2) { _, urls in
            try await withPicker(engines: urls) { picker in
                let port = picker.configuration.grpcPort
                let bad = try await Self.exchange(port, [Self.headers([], mode: .fullDuplexStreamed), Self.body("{\"model\": ")])
                #expect(bad.first?.immediateResponse.status.code == .badRequest)
                #expect(bad.first?.immediateResponse.body.contains("not valid JSON") == true)
                let noModel = try await Self.exchange(port, [Self.headers([], mode: .buffered), Self.body(#"{"messages":[]}"#)])
                #expect(noModel.last.map { $0.immediateResponse.status.code } == .badRequest)
                #expect(noModel.last?.immediateResponse.body.contains("model") == true)
                let nowhere = try await Self.exchange(port, [Self.headers([], mode: .buffered, hint: ["10.9.9.9:1"]), Self.body(Self.chatBody)])
                #expect(nowhere.last?.immediateResponse.status.code == .serviceUnavailable)
                let nowhereBySession = try await Self.exchange(port, [Self.headers([("x-session-id", "s")], mode: .none, hint: [])])
                #expect(nowhereBySession.first?.immediateResponse.status.code == .serviceUnavailable)
            }
        }
    }

    @Test("the subset hint restricts the candidates", arguments: [ExtProcStream.BodyMode.none, .buffered])
    func subsetHint(_ mode: ExtProcStream.BodyMode) async throws {
        try await withSimCluster(engines: 3) { _, urls in
            try await withPicker(engines: urls) { picker in
                let only = urls[2].replacingOccurrences(of: "http://", with: "")
                for s in 0..<4 {
                    let msgs = mode == .none
                        ? [Self.headers([("x-session-id", "hint-\(s)")], mode: .none, hint: [only])]
                        : [Self.headers([], mode: .buffered, hint: [only]), Self.body(Self.chatBody)]
                    let out = try await Self.exchange(picker.configuration.grpcPort, msgs)
                    let common = mode == .none ? out[0].requestHeaders.response : out[1].requestBody.response
                    #expect(Self.destination(common) == only)
                }
            }
        }
    }

    @Test("response: a session token names the engine; usage is read from the body")
    func response() async throws {
        try await withSimCluster(engines: 2) { _, urls in
            try await withPicker(engines: urls) { picker in
                var rh = ProcessingRequest()
                rh.responseHeaders.headers.headers = []
                var rb = ProcessingRequest()
                rb.responseBody.body = Data(#"{"usage":{"prompt_tokens":40,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":32}}}"#.utf8)
                rb.responseBody.endOfStream = true
                let out = try await Self.exchange(picker.configuration.grpcPort, [
                    Self.headers([], mode: .fullDuplexStreamed, responseMode: .streamed), Self.body(Self.chatBody), rh, rb])
                try #require(out.count == 4)
                let dest = try #require(Self.destination(out[0].requestHeaders.response))
                let token = try #require(Self.header(out[2].responseHeaders.response, "x-session-token"))
                #expect(String(decoding: Data(base64Encoded: token) ?? Data(), as: UTF8.self) == dest)
                #expect(out[3].responseBody.response.hasBodyMutation == false)
                let metrics = String(decoding: picker.metrics.render(), as: UTF8.self)
                #expect(TestHTTP.metricSum(metrics, "kvroute_epp_cached_prompt_tokens_total") == 32)
                #expect(TestHTTP.metricSum(metrics, "kvroute_epp_streams_total") >= 1)
                #expect(metrics.contains("kvroute_epp_decision_duration_seconds_count{mode=\"full_duplex\"} 1"))
            }
        }
    }

    @Test("TLS: with --cert/--key the ext_proc port speaks TLS (a client trusting the certificate is routed; plaintext is refused)")
    func tls() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvroute-tls-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let cert = dir.appendingPathComponent("tls.crt").path, key = dir.appendingPathComponent("tls.key").path
        let made = try ExternalTool.run(try ExternalTool.require("openssl"), [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=kvroute-epp",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert,
        ])
        try #require(made.status == 0, "openssl: \(made.stderr)")
        try await withSimCluster(engines: 2) { _, urls in
            try await withPicker(engines: urls, configure: { $0.certificatePath = cert; $0.keyPath = key }) { picker in
                let port = picker.configuration.grpcPort
                let trusted: HTTP2ClientTransport.Posix.TransportSecurity = .tls {
                    $0.trustRoots = .certificates([.file(path: cert, format: .pem)])
                }
                let out = try await Self.exchange(port, [Self.headers([("x-session-id", "tls")], mode: .none, endOfStream: true)], security: trusted)
                let destination = out.first.flatMap { Self.destination($0.requestHeaders.response) }
                #expect(destination.map { d in urls.contains { $0.hasSuffix(d) } } == true, "\(out)")
                // A plaintext client gets no answer: it fails, or keeps retrying the handshake.
                let plain = await withTaskGroup(of: Bool.self) { group in
                    group.addTask {
                        let r = try? await Self.exchange(port, [Self.headers([("x-session-id", "tls")], mode: .none, endOfStream: true)])
                        return r.flatMap { $0.first }.flatMap { Self.destination($0.requestHeaders.response) } != nil
                    }
                    group.addTask { try? await Task.sleep(for: .seconds(5)); return false }
                    let first = await group.next() ?? false
                    group.cancelAll()
                    return first
                }
                #expect(!plain, "a plaintext client was routed by a TLS picker")
            }
        }
    }

    @Test("gRPC health: SERVING for the four names once endpoints are known; not ready without endpoints")
    func health() async throws {
        let names = ["", "envoy.service.ext_proc.v3.ExternalProcessor", "liveness", "readiness"]
        try await withSimCluster(engines: 1) { _, urls in
            try await withPicker(engines: urls) { picker in
                let s = try await healthStatuses(port: picker.configuration.healthPort, services: names)
                #expect(names.allSatisfy { s[$0] == .serving }, "\(s)")
                await #expect(throws: RPCError.self) { _ = try await healthStatuses(port: picker.configuration.healthPort, services: ["other"]) }
            }
        }
        try await withPicker(engines: ["http://kvroute-no-such-host.invalid:8000"]) { picker in
            let s = try await healthStatuses(port: picker.configuration.healthPort, services: names)
            #expect(s["liveness"] == .serving)
            #expect(s["readiness"] == .notServing)
            #expect(s["envoy.service.ext_proc.v3.ExternalProcessor"] == .notServing)
        }
    }
}
