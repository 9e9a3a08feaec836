/// An error from KV-event decoding, encoding or transport. The code is extensible; callers
/// that need a status map codes at their edge.
public struct KVEventsError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        /// Bytes that are not MessagePack, or that break a decoding limit.
        public static let malformedMessagePack = Code("malformed_msgpack")
        /// Valid MessagePack that is not a vLLM KV event batch.
        public static let malformedEvent = Code("malformed_event")
        /// A multipart message that is not `[topic, seq, payload]`.
        public static let malformedMessage = Code("malformed_message")
        /// libzmq could not be loaded at run time.
        public static let zmqUnavailable = Code("zmq_unavailable")
        /// A libzmq call failed.
        public static let zmqFailure = Code("zmq_failure")
        /// No answer within the time allowed.
        public static let timedOut = Code("timed_out")
        /// A configuration value out of range.
        public static let invalidConfiguration = Code("invalid_configuration")
        /// The publisher or subscriber was shut down.
        public static let closed = Code("closed")
    }

    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }

    static func msgpack(_ message: String) -> KVEventsError { KVEventsError(code: .malformedMessagePack, message: message) }
    static func event(_ message: String) -> KVEventsError { KVEventsError(code: .malformedEvent, message: message) }
}
