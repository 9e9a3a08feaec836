import Foundation
import HTTPTypes
import Hummingbird
import KVRouteRouting
import NIOCore

/// An error answered as OpenAI error JSON (`{"error": {"message", "type", "param", "code"}}`).
public struct GatewayError: Error, Sendable, HTTPResponseError, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var message: String
    public var type: String

    public init(_ status: HTTPResponse.Status, _ message: String, type: String? = nil) {
        self.status = status
        self.message = message
        self.type = type ?? Self.typeName(status)
    }

    public var description: String { "\(status.code): \(message)" }

    static func typeName(_ s: HTTPResponse.Status) -> String { OpenAIErrorBody.typeName(status: s.code) }

    public var body: [UInt8] { OpenAIErrorBody.json(status: status.code, message: message, type: type) }

    /// The same error as one SSE event, for failures after a stream started.
    public var sseEvent: ByteBuffer { ByteBuffer(string: "data: " + String(decoding: body, as: UTF8.self) + "\n\n") }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// Every error escaping a route becomes OpenAI error JSON.
struct GatewayErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as GatewayError {
            throw e
        } catch let e as HTTPError {
            switch e.status {
            case .notFound: throw GatewayError(.notFound, "Not Found: \(request.method) \(request.uri.path)")
            case .contentTooLarge: throw GatewayError(.contentTooLarge, "Request body too large")
            default: throw GatewayError(e.status, e.body ?? e.status.reasonPhrase)
            }
        } catch {
            // The details stay in the log: they may name engines or other internals.
            context.logger.error("request failed", metadata: ["error": "\(error)"])
            throw GatewayError(.internalServerError, "internal error")
        }
    }
}
