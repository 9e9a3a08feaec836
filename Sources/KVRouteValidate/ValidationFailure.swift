import Foundation

/// Why a validation could not run, with the exit code `kvroute validate` returns for it.
///
/// A struct with an extensible code rather than an enum, so the demo and other callers can
/// switch on the code (and its exit code) while new causes can be added without breaking
/// them. The message is always one line: it is what a CI log shows, never a stack trace.
public struct ValidationFailure: Error, Sendable, CustomStringConvertible {
    /// The kind of failure, and the process exit code it maps to.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let exitCode: Int32
        public let name: String

        public init(exitCode: Int32, name: String) {
            self.exitCode = exitCode
            self.name = name
        }

        /// Thresholds not met, a measured request failed, or no prefix-cache queries seen.
        public static let failed = Code(exitCode: 1, name: "failed")
        /// Bad flags or settings.
        public static let usage = Code(exitCode: 2, name: "usage")
        /// The gateway is unreachable or cannot serve a chat completion (wrong model included).
        public static let gateway = Code(exitCode: 3, name: "gateway")
        /// Engine metrics, Prometheus or the Kubernetes API are unavailable or unusable.
        public static let metrics = Code(exitCode: 4, name: "metrics")

        public var description: String { name }
    }

    public var code: Code
    /// One line saying what went wrong and, where it helps, what to do about it.
    public var message: String
    /// The underlying error, kept for logs and debugging; the message already names it.
    public var cause: (any Error)?

    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = Self.oneLine(message)
        self.cause = cause
    }

    public var description: String { message }

    static func oneLine(_ s: String) -> String {
        s.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
    }
}

extension ValidationFailure {
    /// A short, one-line text for a transport error: connection refused and timeouts by
    /// name, anything else cut to a readable length.
    package static func describe(_ error: any Error) -> String {
        let text = String(describing: error)
        let lower = text.lowercased()
        if lower.contains("connection refused") || lower.contains("connectionrefused") || lower.contains("econnrefused") {
            return "connection refused"
        }
        if lower.contains("connecttimeout") || lower.contains("connect timeout") { return "connect timed out" }
        if lower.contains("deadlineexceeded") || lower.contains("readtimeout") { return "timed out" }
        if lower.contains("no such host") || lower.contains("nxdomain") || lower.contains("unknownhost") || lower.contains("dnsaerror") {
            return "the host name does not resolve"
        }
        let line = oneLine(text)
        return line.count > 200 ? String(line.prefix(200)) + "…" : line
    }
}
