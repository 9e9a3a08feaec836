/// An error from the engine model. The code is extensible; adapters map codes to HTTP status
/// codes and OpenAI error types at their edge.
public struct EngineError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        /// A request the engine can never serve (too long for the context or the KV pool).
        public static let requestTooLarge = Code("request_too_large")
        /// A parameter out of range (negative max_tokens and the like).
        public static let invalidRequest = Code("invalid_request")
        /// A configuration value out of range.
        public static let invalidConfiguration = Code("invalid_configuration")
        /// The engine is shutting down.
        public static let shuttingDown = Code("shutting_down")
    }

    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
