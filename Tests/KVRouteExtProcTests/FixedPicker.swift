import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import KVRouteProto
import KVRouteTestSupport
import ServiceLifecycle
import SwiftProtobuf

/// An ext_proc endpoint picker that names the same endpoints for every request, as
/// kvroute epp answers: the primary in `x-gateway-destination-endpoint`, the primary and its
/// fallbacks in `envoy.lb` metadata, and `clear_route_cache`. It removes nothing the client
/// sent, so what Envoy does with forged routing headers is Envoy's configuration alone. It
/// speaks the headers-only and full-duplex modes of deploy/envoy's configurations, and
/// serves gRPC health on its own port.
struct FixedPicker: Envoy_Service_ExtProc_V3_ExternalProcessor.SimpleServiceProtocol {
    let endpoints: [String]
    let grpcPort = freePort()
    let healthPort = freePort()

    var services: [any Service] {
        let extProc = GRPCServer(transport: .http2NIOPosix(address: .ipv4(host: "127.0.0.1", port: grpcPort), transportSecurity: .plaintext), services: [self])
        let health = GRPCServer(transport: .http2NIOPosix(address: .ipv4(host: "127.0.0.1", port: healthPort), transportSecurity: .plaintext), services: [AlwaysServing()])
        return [ServingGRPC(server: health), ServingGRPC(server: extProc)]
    }

    func routing() -> Envoy_Service_ExtProc_V3_CommonResponse {
        var c = Envoy_Service_ExtProc_V3_CommonResponse()
        var o = Envoy_Config_Core_V3_HeaderValueOption()
        o.header.key = "x-gateway-destination-endpoint"
        o.header.rawValue = Data(endpoints[0].utf8)
        o.appendAction = .overwriteIfExistsOrAdd
        c.headerMutation.setHeaders = [o]
        c.clearRouteCache_p = true
        return c
    }

    func metadata() -> Google_Protobuf_Struct {
        var inner = Google_Protobuf_Struct()
        inner.fields["x-gateway-destination-endpoint"] = Google_Protobuf_Value(stringValue: endpoints.joined(separator: ","))
        var outer = Google_Protobuf_Struct()
        outer.fields["envoy.lb"] = Google_Protobuf_Value(structValue: inner)
        return outer
    }

    func process(
        request: RPCAsyncSequence<Envoy_Service_ExtProc_V3_ProcessingRequest, any Error>,
        response: RPCWriter<Envoy_Service_ExtProc_V3_ProcessingResponse>,
        context: ServerContext
    ) async throws {
        var fullDuplex = false
        var body = Data()
        for try await message in request {
            var r = Envoy_Service_ExtProc_V3_ProcessingResponse()
            switch message.request {
            case .requestHeaders(let h)?:
                fullDuplex = message.protocolConfig.requestBodyMode == .fullDuplexStreamed && !h.endOfStream
                if fullDuplex { continue }
                r.requestHeaders.response = routing()
                r.dynamicMetadata = metadata()
            case .requestBody(let b)?:
                guard fullDuplex else { r.requestBody.response = .init(); break }
                body.append(b.body)
                guard b.endOfStream else { continue }
                var headers = Envoy_Service_ExtProc_V3_ProcessingResponse()
                headers.requestHeaders.response = routing()
                headers.dynamicMetadata = metadata()
                try await response.write(headers)
                var streamed = Envoy_Service_ExtProc_V3_StreamedBodyResponse()
                streamed.body = body
                streamed.endOfStream = true
                r.requestBody.response.bodyMutation.streamedResponse = streamed
            case .requestTrailers?:
                r.requestTrailers = .init()
            case .responseHeaders?:
                r.responseHeaders.response = .init()
            case .responseBody?:
                r.responseBody.response = .init()
            case .responseTrailers?:
                r.responseTrailers = .init()
            case nil:
                continue
            }
            try await response.write(r)
        }
    }
}

struct AlwaysServing: Grpc_Health_V1_Health.SimpleServiceProtocol {
    func check(request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext) async throws -> Grpc_Health_V1_HealthCheckResponse {
        var r = Grpc_Health_V1_HealthCheckResponse()
        r.status = .serving
        return r
    }
}

/// A gRPC server as a Service, shut down with its group.
struct ServingGRPC: Service {
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.serve()
        } onGracefulShutdown: {
            server.beginGracefulShutdown()
        }
    }
}
