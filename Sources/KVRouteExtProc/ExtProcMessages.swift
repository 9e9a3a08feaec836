import Foundation
import KVRouteCore
import KVRouteProto
import SwiftProtobuf

typealias ProcessingRequest = Envoy_Service_ExtProc_V3_ProcessingRequest
typealias ProcessingResponse = Envoy_Service_ExtProc_V3_ProcessingResponse

/// Building Envoy's messages from routing outcomes.
enum ExtProcMessages {
    static func headers(_ map: Envoy_Config_Core_V3_HeaderMap) -> [(String, String)] {
        map.headers.map { h in
            (h.key, h.value.isEmpty && !h.rawValue.isEmpty ? String(decoding: h.rawValue, as: UTF8.self) : h.value)
        }
    }

    static func bodyMode(_ r: ProcessingRequest) -> ExtProcStream.BodyMode {
        guard r.hasProtocolConfig else { return .none }
        switch r.protocolConfig.requestBodyMode {
        case .buffered, .bufferedPartial: return .buffered
        case .streamed: return .streamed
        case .fullDuplexStreamed: return .fullDuplex
        default: return .none
        }
    }

    static func option(_ key: String, _ value: String) -> Envoy_Config_Core_V3_HeaderValueOption {
        var o = Envoy_Config_Core_V3_HeaderValueOption()
        o.header.key = key
        o.header.rawValue = Data(value.utf8)
        o.appendAction = .overwriteIfExistsOrAdd
        return o
    }

    /// The routing answer: the destination header (primary first, then fallbacks), the
    /// forged headers removed, and the route cache cleared so Envoy re-picks the route.
    static func routing(destination: String, remove: [String], extra: [(String, String)] = []) -> Envoy_Service_ExtProc_V3_CommonResponse {
        var c = Envoy_Service_ExtProc_V3_CommonResponse()
        c.headerMutation.setHeaders = [option(ExtProcStream.destinationHeader, destination)] + extra.map { option($0.0, $0.1) }
        c.headerMutation.removeHeaders = remove
        c.clearRouteCache_p = true
        return c
    }

    /// `envoy.lb` → `x-gateway-destination-endpoint` dynamic metadata.
    static func metadata(destination: String) -> Google_Protobuf_Struct {
        var inner = Google_Protobuf_Struct()
        inner.fields[ExtProcStream.destinationHeader] = Google_Protobuf_Value(stringValue: destination)
        var outer = Google_Protobuf_Struct()
        outer.fields["envoy.lb"] = Google_Protobuf_Value(structValue: inner)
        return outer
    }

    static func immediate(status: Int, message: String) -> ProcessingResponse {
        var i = Envoy_Service_ExtProc_V3_ImmediateResponse()
        i.status.code = Envoy_Type_V3_StatusCode(rawValue: status) ?? .internalServerError
        let type: String = switch status {
        case 400: "BadRequestError"
        case 429: "RateLimitError"
        case 503: "ServiceUnavailableError"
        default: "InternalServerError"
        }
        i.body = #"{"error":{"message":"\#(message.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\""))","type":"\#(type)","param":null,"code":\#(status)}}"#
        i.headers.setHeaders = [option("content-type", "application/json")]
        i.details = "kvroute_epp_\(status)"
        var r = ProcessingResponse()
        r.immediateResponse = i
        return r
    }
}
