/// Why a validation could not run, with the exit code the command returns for it.
public struct ValidationFailure: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable {
        public let exitCode: Int32
        public let name: String
        /// Thresholds not met, or no prefix-cache queries seen.
        public static let failed = Code(exitCode: 1, name: "failed")
        /// Bad flags or settings.
        public static let usage = Code(exitCode: 2, name: "usage")
        /// The gateway is unreachable or cannot serve a chat completion.
        public static let gateway = Code(exitCode: 3, name: "gateway")
        /// Engine metrics (or Prometheus, or the Kubernetes API) are unavailable.
        public static let metrics = Code(exitCode: 4, name: "metrics")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
