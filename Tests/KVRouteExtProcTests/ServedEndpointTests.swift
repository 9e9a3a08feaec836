import Foundation
import KVRouteCore
import KVRouteProto
import KVRouteRouting
import KVRouteTestSupport
import SwiftProtobuf
import Testing
@testable import KVRouteExtProc

/// What the picker learns when Envoy reports the endpoint that served (a retry to a fallback):
/// `envoy.lb` metadata `x-gateway-destination-endpoint-served` or the `upstream.address`
/// attribute on the response side.
@Suite("kvroute epp: the endpoint that served", .serialized)
struct ServedEndpointTests {
    static func responseHeaders(servedMetadata: String? = nil, upstreamAttribute: String? = nil) -> ProcessingRequest {
        var r = ProcessingRequest()
        r.responseHeaders.headers.headers = []
        if let servedMetadata {
            var ns = Google_Protobuf_Struct()
            ns.fields[ExtProcMessages.servedKey] = Google_Protobuf_Value(stringValue: servedMetadata)
            r.metadataContext.filterMetadata["envoy.lb"] = ns
        }
        if let upstreamAttribute {
            var attrs = Google_Protobuf_Struct()
            attrs.fields["upstream.address"] = Google_Protobuf_Value(stringValue: upstreamAttribute)
            r.attributes["envoy.filters.http.ext_proc"] = attrs
        }
        return r
    }

    /// A prompt of many prefix blocks.
    static let longBody = #"{"model":"meta-llama/Llama-3.2-3B-Instruct","max_tokens":4,"messages":[{"role":"system","content":""# +
        String(repeating: "A long system prompt shared by the whole conversation. ", count: 30) + #""},{"role":"user","content":"hi"}]}"#

    static func responseBody() -> ProcessingRequest {
        var r = ProcessingRequest()
        r.responseBody.body = Data(#"{"usage":{"prompt_tokens":40,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":0}}}"#.utf8)
        r.responseBody.endOfStream = true
        return r
    }

    @Test("reported by metadata or attribute: the session token, the in-flight count and the prefix index move to the fallback",
          arguments: ["metadata", "attribute"])
    func fallbackServed(_ how: String) async throws {
        try await withSimCluster(engines: 3) { _, urls in
            try await withPicker(engines: urls) { picker in
                let addresses = urls.map { $0.replacingOccurrences(of: "http://", with: "") }
                let primary = try #require(EndpointAddress(addresses[0])), fallback = try #require(EndpointAddress(addresses[1]))
                let token = SessionAffinityScorer.token(for: primary)
                let out = try await ExtProcServiceTests.exchange(picker.configuration.grpcPort, [
                    ExtProcServiceTests.headers([("x-session-token", token)], mode: .buffered, responseMode: .buffered),
                    ExtProcServiceTests.body(Self.longBody),
                    how == "metadata" ? Self.responseHeaders(servedMetadata: fallback.description) : Self.responseHeaders(upstreamAttribute: fallback.description),
                    Self.responseBody(),
                ])
                try #require(out.count == 4)
                #expect(ExtProcServiceTests.destination(out[1].requestBody.response) == primary.description)
                let served = try #require(ExtProcServiceTests.header(out[2].responseHeaders.response, "x-session-token"))
                #expect(served == SessionAffinityScorer.token(for: fallback))
                let router = picker.service.router
                #expect(router.scheduler.inFlightTotal == 0)
                let metrics = String(decoding: picker.metrics.render(), as: UTF8.self)
                #expect(metrics.contains("kvroute_requests_routed_total{endpoint=\"\(fallback)\"} 1"))

                // The same prompt now goes to the fallback, which holds it.
                let parsed = try OpenAIRequestParser.parse(body: Array(Self.longBody.utf8), apiKind: .chatCompletions)
                let next = try router.route(InferenceRequest(requestID: "next", model: parsed.model, prompt: parsed.prompt))
                #expect(next.primary == fallback)
                #expect((next.decision.result?.explanation.matchedPrefixBlocks ?? 0) > 0)
                next.finished(servedBy: nil, outcome: .abandoned)
            }
        }
    }

    @Test("an endpoint outside the decision, or garbage, is not taken as the one that served")
    func strangerIgnored() async throws {
        #expect(ExtProcMessages.servedEndpoint(Self.responseHeaders(servedMetadata: "not an address")) == nil)
        #expect(ExtProcMessages.servedEndpoint(Self.responseHeaders(upstreamAttribute: "10.0.0.9:8000")) == EndpointAddress("10.0.0.9:8000"))
        try await withSimCluster(engines: 2) { _, urls in
            try await withPicker(engines: urls) { picker in
                let out = try await ExtProcServiceTests.exchange(picker.configuration.grpcPort, [
                    ExtProcServiceTests.headers([], mode: .buffered, responseMode: .buffered),
                    ExtProcServiceTests.body(ExtProcServiceTests.chatBody),
                    Self.responseHeaders(servedMetadata: "10.9.9.9:1"),
                    Self.responseBody(),
                ])
                try #require(out.count == 4)
                let dest = try #require(ExtProcServiceTests.destination(out[1].requestBody.response))
                let token = try #require(ExtProcServiceTests.header(out[2].responseHeaders.response, "x-session-token"))
                #expect(String(decoding: Data(base64Encoded: token) ?? Data(), as: UTF8.self) == dest)
                #expect(picker.service.router.scheduler.inFlightTotal == 0)
            }
        }
    }
}
