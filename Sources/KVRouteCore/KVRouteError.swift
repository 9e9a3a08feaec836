/// An error from the routing core: an extensible code, a message for people, and the
/// underlying cause. Adapters map codes to HTTP statuses or ext_proc immediate responses at
/// their edge.
public struct KVRouteError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The request body is not an OpenAI request (bad JSON, wrong shapes).
        public static let invalidRequest = Code("invalid_request")
        /// The request names no model.
        public static let missingModel = Code("missing_model")
        /// A configuration value is wrong (flags, endpoints).
        public static let invalidConfiguration = Code("invalid_configuration")
        /// An EndpointPickerConfig cannot be used.
        public static let invalidConfig = Code("invalid_config")
        /// An EndpointPickerConfig names a plugin type that does not exist.
        public static let unknownPlugin = Code("unknown_plugin")
        /// No endpoint is left to route to.
        public static let noCandidates = Code("no_candidates")
        /// Every endpoint is saturated.
        public static let noCapacity = Code("no_capacity")
        /// A bug or an impossible state.
        public static let internalError = Code("internal_error")
    }

    public var code: Code
    public var message: String
    public var cause: (any Error)?

    public init(code: Code, message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        cause.map { "\(message) (\($0))" } ?? message
    }
}
