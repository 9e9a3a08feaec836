import Foundation
import KVRouteCore
import KVRouteProto
import KVRouteRouting
import SwiftProtobuf

typealias ProcessingRequest = Envoy_Service_ExtProc_V3_ProcessingRequest
typealias ProcessingResponse = Envoy_Service_ExtProc_V3_ProcessingResponse
typealias CommonResponse = Envoy_Service_ExtProc_V3_CommonResponse

/// Reading Envoy's messages and building the answers.
enum ExtProcMessages {
    /// Header pairs; Envoy sends values in `raw_value`, older versions in `value`.
    static func headers(_ map: Envoy_Config_Core_V3_HeaderMap) -> [(String, String)] {
        map.headers.map { h in
            (h.key, h.rawValue.isEmpty ? h.value : String(decoding: h.rawValue, as: UTF8.self))
        }
    }

    static func bodyMode(_ m: Envoy_Extensions_Filters_Http_ExtProc_V3_ProcessingMode.BodySendMode) -> ExtProcStream.BodyMode {
        switch m {
        case .buffered, .bufferedPartial: .buffered
        case .streamed: .streamed
        case .fullDuplexStreamed: .fullDuplex
        default: .none
        }
    }

    /// `envoy.lb.subset_hint` → `x-gateway-destination-endpoint-subset`: the endpoints the
    /// request may use (nil: no hint). Unparseable entries are dropped, so a hint naming
    /// nothing usable leaves no candidate.
    static func subsetHint(_ metadata: Envoy_Config_Core_V3_Metadata) -> [EndpointAddress]? {
        guard let ns = metadata.filterMetadata["envoy.lb.subset_hint"],
              let value = ns.fields["x-gateway-destination-endpoint-subset"] else { return nil }
        let texts: [String] = switch value.kind {
        case .listValue(let l)?: l.values.compactMap { if case .stringValue(let s)? = $0.kind { s } else { nil } }
        case .stringValue(let s)?: s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        default: []
        }
        return texts.compactMap(EndpointAddress.init)
    }

    /// The endpoint that served the request, when Envoy reports it on the response side:
    /// `envoy.lb` metadata `x-gateway-destination-endpoint-served` (the Gateway API Inference
    /// Extension's name), or the `upstream.address` attribute (ext_proc `response_attributes`).
    static func servedEndpoint(_ message: ProcessingRequest) -> EndpointAddress? {
        if let ns = message.metadataContext.filterMetadata["envoy.lb"],
           case .stringValue(let s)? = ns.fields[servedKey]?.kind, let a = EndpointAddress(s.trimmingCharacters(in: .whitespaces)) {
            return a
        }
        for attributes in message.attributes.values {
            if case .stringValue(let s)? = attributes.fields["upstream.address"]?.kind, let a = EndpointAddress(s) { return a }
        }
        return nil
    }

    static let servedKey = "x-gateway-destination-endpoint-served"

    static func option(_ key: String, _ value: String) -> Envoy_Config_Core_V3_HeaderValueOption {
        var o = Envoy_Config_Core_V3_HeaderValueOption()
        o.header.key = key
        o.header.rawValue = Data(value.utf8)
        o.appendAction = .overwriteIfExistsOrAdd
        return o
    }

    /// The routing answer: the destination header, forged routing headers removed, and
    /// the route cache cleared so Envoy picks the route again with the header present.
    static func routing(destination: String, remove: [String], extra: [(String, String)] = []) -> CommonResponse {
        var c = CommonResponse()
        c.headerMutation.setHeaders = [option(ExtProcStream.destinationHeader, destination)] + extra.map { option($0.0, $0.1) }
        c.headerMutation.removeHeaders = remove
        c.clearRouteCache_p = true
        return c
    }

    /// `envoy.lb` → `x-gateway-destination-endpoint`: primary then fallbacks.
    static func metadata(destination: String) -> Google_Protobuf_Struct {
        var inner = Google_Protobuf_Struct()
        inner.fields[ExtProcStream.destinationHeader] = Google_Protobuf_Value(stringValue: destination)
        var outer = Google_Protobuf_Struct()
        outer.fields["envoy.lb"] = Google_Protobuf_Value(structValue: inner)
        return outer
    }

    /// An OpenAI-style error (`{"error": {"message", "type", "param", "code"}}`) that Envoy
    /// sends to the client instead of forwarding the request.
    static func immediate(status: Int, message: String) -> ProcessingResponse {
        var i = Envoy_Service_ExtProc_V3_ImmediateResponse()
        i.status.code = Envoy_Type_V3_StatusCode(rawValue: status) ?? .internalServerError
        i.body = String(decoding: OpenAIErrorBody.json(status: status, message: message), as: UTF8.self)
        i.headers.setHeaders = [option("content-type", "application/json")]
        i.details = "kvroute_epp_\(status)"
        var r = ProcessingResponse()
        r.immediateResponse = i
        return r
    }
}
