import Foundation
import NIOCore
import ServiceLifecycle

/// A server that could not take its address (the port is in use, the host does not resolve):
/// which server, which address, and why, so a command can say so in one line.
public struct ListenError: Error, Sendable, CustomStringConvertible {
    /// What was to listen there: "gateway", "ext_proc gRPC", "metrics".
    public var server: String
    public var host: String
    public var port: Int
    public var cause: any Error

    public init(server: String, host: String, port: Int, cause: any Error) {
        self.server = server
        self.host = host
        self.port = port
        self.cause = cause
    }

    /// `address already in use`, rather than NIO's `bind(descriptor:ptr:bytes:): ... (errno: 98)`.
    public var reason: String { Self.reason(cause) }

    public var description: String { "cannot listen on \(host):\(port): \(reason)" }

    /// The operating system's words for a socket error, lowercased; other errors as they describe themselves.
    public static func reason(_ error: any Error) -> String {
        if let io = error as? IOError { return String(cString: strerror(io.errnoCode)).lowercased() }
        return "\(error)"
    }
}

/// A server Service whose failure before it listens becomes a ``ListenError`` naming its
/// address. Once it listens, its errors pass through unchanged.
package struct ListeningService: Service {
    let server: any Service
    let name: String
    let host: String
    let port: Int
    let isListening: @Sendable () -> Bool

    package init(_ server: any Service, name: String, host: String, port: Int, isListening: @escaping @Sendable () -> Bool) {
        self.server = server
        self.name = name
        self.host = host
        self.port = port
        self.isListening = isListening
    }

    package func run() async throws {
        do {
            try await server.run()
        } catch where !isListening() && !(error is CancellationError) {
            throw ListenError(server: name, host: host, port: port, cause: error)
        }
    }
}
