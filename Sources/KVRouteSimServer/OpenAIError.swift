import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// An error answered the way vLLM's OpenAI server does:
/// `{"error": {"message", "type", "param", "code"}}` with the matching HTTP status.
public struct OpenAIError: Error, Sendable, HTTPResponseError, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var message: String
    public var type: String
    public var param: String?

    public init(_ status: HTTPResponse.Status, _ message: String, type: String? = nil, param: String? = nil) {
        self.status = status
        self.message = message
        self.type = type ?? Self.typeName(for: status)
        self.param = param
    }

    public var description: String { "\(status.code) \(type): \(message)" }

    public static func badRequest(_ m: String, param: String? = nil) -> OpenAIError { OpenAIError(.badRequest, m, param: param) }

    static func typeName(for status: HTTPResponse.Status) -> String {
        switch status.code {
        case 400: "BadRequestError"
        case 404: "NotFoundError"
        case 405: "MethodNotAllowedError"
        case 413: "RequestEntityTooLargeError"
        case 415: "UnsupportedMediaTypeError"
        case 429: "RateLimitError"
        case 503: "ServiceUnavailableError"
        case 500..<600: "InternalServerError"
        default: "Error"
        }
    }

    /// The JSON body.
    public var body: [UInt8] {
        var inner: [String: Any] = ["message": message, "type": type, "code": status.code]
        inner["param"] = param ?? NSNull()
        let data = (try? JSONSerialization.data(withJSONObject: ["error": inner], options: [.sortedKeys])) ?? Data()
        return [UInt8](data)
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// Turns every error escaping a handler — Hummingbird's own (unknown route, wrong method,
/// body too large) included — into OpenAI error JSON, so clients never see another shape.
public struct OpenAIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as OpenAIError {
            throw e
        } catch let e as HTTPError {
            let message: String
            switch e.status {
            case .notFound: message = "Not Found: \(request.method) \(request.uri.path)"
            case .methodNotAllowed: message = "Method Not Allowed: \(request.method) \(request.uri.path)"
            case .contentTooLarge: message = "Request body too large"
            default: message = e.body ?? e.status.reasonPhrase
            }
            throw OpenAIError(e.status, message)
        } catch is NIOTooManyBytesError {
            throw OpenAIError(.contentTooLarge, "Request body too large")
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(error)"])
            throw OpenAIError(.internalServerError, "internal error: \(error)")
        }
    }
}
