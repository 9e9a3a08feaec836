import Foundation
import KVRouteCore

/// OpenAI error JSON (`{"error": {"message", "type", "param", "code"}}`) as every kvroute
/// front door answers it, and the HTTP status each routing-core error answers with. The
/// gateway sends it as its response; the picker hands it to Envoy as an immediate response.
public enum OpenAIErrorBody {
    /// The body for `status` with `message`; `type` defaults to the status's OpenAI name.
    public static func json(status: Int, message: String, type: String? = nil) -> [UInt8] {
        let inner: [String: Any] = ["message": message, "type": type ?? typeName(status: status), "param": NSNull(), "code": status]
        return [UInt8]((try? JSONSerialization.data(withJSONObject: ["error": inner], options: [.sortedKeys])) ?? Data())
    }

    /// The OpenAI client's error class name for a status.
    public static func typeName(status: Int) -> String {
        switch status {
        case 400: "BadRequestError"
        case 404: "NotFoundError"
        case 408: "RequestTimeoutError"
        case 413: "RequestEntityTooLargeError"
        case 415: "UnsupportedMediaTypeError"
        case 429: "RateLimitError"
        case 502: "BadGatewayError"
        case 503: "ServiceUnavailableError"
        case 504: "GatewayTimeoutError"
        default: status >= 500 ? "InternalServerError" : "Error"
        }
    }

    /// The HTTP status an error from the routing core answers with.
    public static func status(for error: KVRouteError) -> Int {
        switch error.code {
        case .invalidRequest, .missingModel: 400
        case .noCapacity: 429
        case .noCandidates: 503
        default: 500
        }
    }
}
