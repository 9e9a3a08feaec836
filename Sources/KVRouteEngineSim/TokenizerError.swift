/// An error loading a tokenizer. The code is extensible; the message says what to do.
public struct TokenizerError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        /// No tokenizer file where one was looked for.
        public static let notFound = Code("tokenizer_not_found")
        /// The file is not a `tokenizer.json` this loader can read.
        public static let invalidFile = Code("invalid_tokenizer_file")
        /// A valid `tokenizer.json` asking for behaviour this tokenizer does not implement.
        public static let unsupported = Code("unsupported_tokenizer")
    }

    public var code: Code
    public var message: String
    /// The underlying error (a file or JSON error), when there is one.
    public var cause: (any Error)?

    public init(code: Code, message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        if let cause { return "\(code): \(message) (\(cause))" }
        return "\(code): \(message)"
    }
}
