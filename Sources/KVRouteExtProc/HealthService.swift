import GRPCCore
import KVRouteDataLayer
import KVRouteProto

/// gRPC health for Envoy and Kubernetes probes: `liveness` is always SERVING (the process
/// answers); `readiness`, `""` and the ext_proc service name are SERVING only while at least
/// one endpoint is healthy, so a picker that could only fall back is taken out of rotation.
public struct HealthService: Grpc_Health_V1_Health.SimpleServiceProtocol {
    let pool: EndpointPool
    static let services: Set<String> = ["", "envoy.service.ext_proc.v3.ExternalProcessor", "liveness", "readiness"]

    public func check(request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext) async throws -> Grpc_Health_V1_HealthCheckResponse {
        guard Self.services.contains(request.service) else {
            throw RPCError(code: .notFound, message: "unknown service \"\(request.service)\"")
        }
        var r = Grpc_Health_V1_HealthCheckResponse()
        r.status = request.service == "liveness" || pool.healthyCount > 0 ? .serving : .notServing
        return r
    }
}
