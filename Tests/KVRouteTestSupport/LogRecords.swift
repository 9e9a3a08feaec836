import Logging
import Synchronization

/// Log records kept in memory.
public final class LogRecords: Sendable {
    public struct Record: Sendable {
        public var level: Logger.Level
        public var message: String
        public var metadata: [String: String]
    }

    private let records = Mutex<[Record]>([])
    public init() {}
    public var all: [Record] { records.withLock { $0 } }
    func append(_ r: Record) { records.withLock { $0.append(r) } }
    public var handler: Handler { Handler(records: self) }

    public struct Handler: LogHandler {
        let records: LogRecords
        public var metadata: Logger.Metadata = [:]
        public var logLevel: Logger.Level = .trace
        public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        public func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
            let merged = self.metadata.merging(metadata ?? [:]) { _, new in new }
            records.append(Record(level: level, message: message.description, metadata: merged.mapValues { "\($0)" }))
        }
    }
}
