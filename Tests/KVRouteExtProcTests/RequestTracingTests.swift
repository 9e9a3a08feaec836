import Foundation
import HTTPTypes
import Hummingbird
import KVRouteRouting
import KVRouteTestSupport
import Logging
import NIOCore
import Synchronization
import Testing

/// A minimal OTLP/HTTP collector: takes `POST /v1/traces` in OTLP's JSON encoding (as
/// `OTEL_EXPORTER_OTLP_PROTOCOL=http/json` sends it) and keeps each span's name, resource
/// service name and attributes (values as strings).
final class OTLPReceiver: Sendable {
    struct ReceivedSpan: Sendable, CustomStringConvertible {
        var service: String
        var name: String
        var kind: String
        var status: String
        var attributes: [String: String]
        var description: String { "\(service) \(name) \(kind) \(status) \(attributes.sorted { $0.key < $1.key })" }
    }

    let port = freePort()
    var url: String { "http://127.0.0.1:\(port)" }
    private let received = Mutex<[ReceivedSpan]>([])
    var spans: [ReceivedSpan] { received.withLock { $0 } }

    var application: some ApplicationProtocol {
        let router = Router()
        router.post("/v1/traces") { [self] req, _ -> Response in
            let body = try await req.body.collect(upTo: 16 << 20)
            let spans = Self.decode(Data(body.readableBytesView))
            received.withLock { $0 += spans }
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: "{}")))
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: quietLogger)
    }

    /// The spans of one `ExportTraceServiceRequest` in OTLP/JSON.
    static func decode(_ data: Data) -> [ReceivedSpan] {
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return [] }
        var out: [ReceivedSpan] = []
        for rs in root["resourceSpans"] as? [[String: Any]] ?? [] {
            let resource = attributes((rs["resource"] as? [String: Any])?["attributes"])
            for ss in rs["scopeSpans"] as? [[String: Any]] ?? [] {
                for span in ss["spans"] as? [[String: Any]] ?? [] {
                    let status = (span["status"] as? [String: Any])?["code"].map { "\($0)" } ?? "unset"
                    out.append(ReceivedSpan(service: resource["service.name"] ?? "", name: span["name"] as? String ?? "",
                                            kind: "\(span["kind"] ?? "")", status: status, attributes: attributes(span["attributes"])))
                }
            }
        }
        return out
    }

    static func attributes(_ list: Any?) -> [String: String] {
        var out: [String: String] = [:]
        for kv in list as? [[String: Any]] ?? [] {
            guard let key = kv["key"] as? String, let value = kv["value"] as? [String: Any] else { continue }
            out[key] = render(value)
        }
        return out
    }

    static func render(_ value: [String: Any]) -> String {
        if let s = value["stringValue"] as? String { return s }
        if let i = value["intValue"] { return "\(i)" }
        if let b = value["boolValue"] { return "\(b)" }
        if let d = value["doubleValue"] { return "\(d)" }
        if let a = (value["arrayValue"] as? [String: Any])?["values"] as? [[String: Any]] { return a.map(render).joined(separator: ",") }
        return "\(value)"
    }

    /// Waits up to 10 s for `count` spans that `match`.
    func waitFor(_ count: Int, _ match: (ReceivedSpan) -> Bool) async throws -> [ReceivedSpan] {
        for _ in 0..<200 {
            let found = spans.filter(match)
            if found.count >= count { return found }
            try await Task.sleep(for: .milliseconds(50))
        }
        return spans.filter(match)
    }
}

/// One span per request through either front door, exported over OTLP by the kvroute binary
/// when `--otlp-endpoint` is given, carrying the decision and the engine that served.
@Suite("Request spans over OTLP", .serialized)
struct RequestTracingTests {
    /// The kvroute binary exporting to `receiver` in OTLP/JSON, with a short batch delay.
    static func kvroute(_ args: [String], receiver: OTLPReceiver, name: String) throws -> BackgroundProcess {
        let binary = try #require(kvrouteBinary, "build kvroute first (swift build)")
        return try BackgroundProcess("/usr/bin/env", [
            "OTEL_EXPORTER_OTLP_PROTOCOL=http/json", "OTEL_BSP_SCHEDULE_DELAY=100", binary,
        ] + args + ["--otlp-endpoint", receiver.url, "--log-level", "error"], name: name)
    }

    static var prompt: [String: Any] { chat(system: sharedPrefix(5, tokens: 400), user: "Trace this request.") }

    @Test("kvroute gateway: a span per request with the profile, picked and served endpoint, prefix blocks and outcome")
    func gateway() async throws {
        let receiver = OTLPReceiver()
        try await withServices([receiver.application]) {
            try await waitForPort(receiver.port)
            try await withSimCluster(engines: 2) { _, urls in
                let port = freePort()
                let gateway = try Self.kvroute(["gateway", "--port", "\(port)", "--endpoints", urls.joined(separator: ","), "--seed", "1"],
                                               receiver: receiver, name: "gateway-otlp")
                defer { gateway.stop() }
                try await waitForPort(port)
                var served: [String] = []
                for i in 0..<2 {
                    let r = try await TestHTTP.postJSON("http://127.0.0.1:\(port)/v1/chat/completions", Self.prompt, headers: [("x-request-id", "traced-\(i)")])
                    #expect(r.status == 200, "\(r.body.prefix(200))")
                    served.append(r.headers.first(name: "x-upstream-host") ?? "?")
                }
                let spans = try await receiver.waitFor(2) { $0.attributes["kvroute.front_door"] == "gateway" }
                try #require(spans.count == 2, "spans: \(receiver.spans) log: \(gateway.log.suffix(1500))")
                let byID = Dictionary(spans.map { ($0.attributes["kvroute.request_id"] ?? "", $0) }, uniquingKeysWith: { a, _ in a })
                let first = try #require(byID["traced-0"], "\(spans)"), second = try #require(byID["traced-1"], "\(spans)")
                print("gateway span: \(second)")
                let engines = urls.map { $0.replacingOccurrences(of: "http://", with: "") }
                for (span, host) in [(first, served[0]), (second, served[1])] {
                    #expect(span.service == "kvroute-gateway")
                    #expect(span.kind.contains("SERVER") || span.kind == "2", "\(span)")
                    #expect(span.attributes["kvroute.profile"] == "default", "\(span)")
                    #expect(span.attributes["kvroute.policy"] == "default")
                    #expect(engines.contains(span.attributes["kvroute.endpoint.picked"] ?? ""), "\(span)")
                    #expect(span.attributes["kvroute.endpoint.served"] == host, "\(span)")
                    #expect(span.attributes["kvroute.outcome"] == "answered")
                    #expect(span.attributes["http.response.status_code"] == "200")
                    #expect(Int(span.attributes["kvroute.prefix_blocks.total"] ?? "") ?? 0 > 0, "\(span)")
                    #expect(span.attributes["url.path"] == "/v1/chat/completions")
                }
                // The second request finds its prompt cached where the first was served.
                #expect(Int(first.attributes["kvroute.prefix_blocks.matched"] ?? "") == 0, "\(first)")
                #expect(Int(second.attributes["kvroute.prefix_blocks.matched"] ?? "") ?? 0 > 0, "\(second)")
                #expect(second.attributes["kvroute.endpoint.picked"] == served[0])

                // A refused request has its span too.
                let bad = try await TestHTTP.request("http://127.0.0.1:\(port)/v1/chat/completions", method: .POST, body: "{\"model\": ")
                #expect(bad.status == 400)
                let refused = try await receiver.waitFor(1) { $0.attributes["kvroute.outcome"] == "refused" }
                #expect(refused.first?.attributes["http.response.status_code"] == "400", "\(receiver.spans)")
            }
        }
    }

    @Test("kvroute epp behind real Envoy: a span per ext_proc stream with the decision and the engine that served",
          .enabled(if: EnvoyProcess.binary != nil || ExternalTool.peersRequired))
    func epp() async throws {
        let receiver = OTLPReceiver()
        try await withServices([receiver.application]) {
            try await waitForPort(receiver.port)
            try await withSimCluster(engines: 2) { _, urls in
                let grpc = freePort(), health = freePort(), metrics = freePort()
                let epp = try Self.kvroute(["epp", "--host", "127.0.0.1", "--grpc-port", "\(grpc)", "--health-port", "\(health)",
                                            "--metrics-port", "\(metrics)", "--endpoints", urls.joined(separator: ","), "--seed", "1"],
                                           receiver: receiver, name: "epp-otlp")
                defer { epp.stop() }
                try await waitForPort(grpc)
                let envoy = try EnvoyProcess(config: "envoy-epp.yaml", eppPort: grpc, eppHealthPort: health, engines: urls, requestBodyMode: "BUFFERED")
                defer { envoy.stop() }
                try await envoy.waitReady()
                let r = try await TestHTTP.postJSON(envoy.url + "/v1/chat/completions", Self.prompt, headers: [("x-request-id", "through-envoy")])
                #expect(r.status == 200, "\(r.body.prefix(200))")
                let spans = try await receiver.waitFor(1) { $0.attributes["kvroute.request_id"] == "through-envoy" }
                let span = try #require(spans.first, "spans: \(receiver.spans) log: \(epp.log.suffix(1500))")
                print("epp span: \(span)")
                #expect(span.service == "kvroute-epp")
                #expect(span.attributes["kvroute.front_door"] == "epp")
                #expect(span.attributes["kvroute.profile"] == "default", "\(span)")
                #expect(span.attributes["kvroute.endpoint.picked"] == r.headers.first(name: "x-upstream-host"), "\(span)")
                #expect(span.attributes["kvroute.endpoint.served"] == r.headers.first(name: "x-upstream-host"), "\(span)")
                #expect(Int(span.attributes["kvroute.prefix_blocks.total"] ?? "") ?? 0 > 0, "\(span)")
                #expect(span.attributes["kvroute.outcome"] != nil, "\(span)")
            }
        }
    }

    @Test("tracing off (the default): a request gets no span")
    func off() {
        #expect(!RequestTracing.isEnabled)
        #expect(RequestSpan.start(.gateway, path: "/", header: { _ in nil }).isRecording == false)
    }
}
