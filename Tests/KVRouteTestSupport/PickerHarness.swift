import KVRouteExtProc

/// `kvroute epp` in-process on free loopback ports, its data layer warmed up and its gRPC and
/// metrics ports accepting before `body` runs.
public func withPicker<T: Sendable>(
    engines: [String], configure: (inout PickerServer.Configuration) -> Void = { _ in }, _ body: @Sendable (PickerServer) async throws -> T
) async throws -> T {
    var c = PickerServer.Configuration()
    c.host = "127.0.0.1"
    c.grpcPort = freePort()
    c.healthPort = freePort()
    c.metricsPort = freePort()
    c.endpoints = engines
    c.seed = 1
    configure(&c)
    let picker = try PickerServer(configuration: c, logger: quietLogger)
    await picker.warmUp()
    let ports = [c.grpcPort, c.metricsPort]
    return try await withServices(try picker.services()) {
        for p in ports { try await waitForPort(p) }
        return try await body(picker)
    }
}
