/// A bounded MessagePack decoder for input from the network.
///
/// Every length is checked against the bytes that remain before anything is allocated, the
/// nesting depth and the number of values are capped, and every failure is a thrown
/// ``KVEventsError`` (code `malformed_msgpack`) — hostile input never traps.
public struct MessagePackDecoder: Sendable {
    public struct Limits: Sendable, Hashable {
        /// Deepest nesting of arrays and maps (vLLM's batches nest five deep).
        public var maxDepth: Int
        /// Most values in one document (each token id, hash and field counts one).
        public var maxValues: Int

        public init(maxDepth: Int = 64, maxValues: Int = 4_000_000) {
            self.maxDepth = maxDepth
            self.maxValues = maxValues
        }
    }

    public var limits: Limits

    public init(limits: Limits = Limits()) { self.limits = limits }

    /// Decodes exactly one value; trailing bytes are an error.
    public func decode(_ bytes: [UInt8]) throws(KVEventsError) -> MessagePackValue {
        let result: Result<MessagePackValue, KVEventsError> = bytes.withUnsafeBytes { raw in
            Result { () throws(KVEventsError) -> MessagePackValue in
                var reader = Reader(bytes: raw, limits: limits)
                let value = try reader.value(depth: 0)
                guard reader.offset == raw.count else {
                    throw .msgpack("\(raw.count - reader.offset) trailing bytes after the value at offset \(reader.offset)")
                }
                return value
            }
        }
        return try result.get()
    }

    struct Reader {
        let bytes: UnsafeRawBufferPointer
        let limits: Limits
        var offset = 0
        var values = 0

        init(bytes: UnsafeRawBufferPointer, limits: Limits) {
            self.bytes = bytes
            self.limits = limits
        }

        var remaining: Int { bytes.count - offset }

        mutating func byte() throws(KVEventsError) -> UInt8 {
            guard offset < bytes.count else { throw .msgpack("unexpected end of input at offset \(offset)") }
            defer { offset += 1 }
            return bytes[offset]
        }

        /// A big-endian unsigned integer of `width` bytes (1, 2, 4 or 8).
        mutating func bigEndian(_ width: Int) throws(KVEventsError) -> UInt64 {
            guard remaining >= width else { throw .msgpack("need \(width) bytes at offset \(offset), \(remaining) left") }
            var v: UInt64 = 0
            for i in 0..<width { v = (v << 8) | UInt64(bytes[offset + i]) }
            offset += width
            return v
        }

        mutating func take(_ count: Int) throws(KVEventsError) -> [UInt8] {
            guard count >= 0, count <= remaining else { throw .msgpack("length \(count) at offset \(offset) exceeds the \(remaining) bytes left") }
            defer { offset += count }
            return Array(bytes[offset..<(offset + count)])
        }

        mutating func string(_ count: Int) throws(KVEventsError) -> String {
            let start = offset
            let raw = try take(count)
            guard let s = String(validating: raw, as: UTF8.self) else { throw .msgpack("string at offset \(start) is not UTF-8") }
            return s
        }

        /// A collection's element count, checked against the bytes left (each element takes
        /// at least `minimumBytes`) before anything is reserved.
        mutating func count(_ n: UInt64, minimumBytes: Int) throws(KVEventsError) -> Int {
            guard n <= UInt64(remaining / minimumBytes) else {
                throw .msgpack("collection of \(n) elements at offset \(offset) cannot fit in the \(remaining) bytes left")
            }
            return Int(n)
        }

        mutating func value(depth: Int) throws(KVEventsError) -> MessagePackValue {
            values += 1
            guard values <= limits.maxValues else { throw .msgpack("more than \(limits.maxValues) values") }
            let at = offset
            let b = try byte()
            switch b {
            case 0x00...0x7F: return .unsigned(UInt64(b))
            case 0x80...0x8F: return try map(Int(b & 0x0F), depth: depth)
            case 0x90...0x9F: return try array(Int(b & 0x0F), depth: depth)
            case 0xA0...0xBF: return .string(try string(Int(b & 0x1F)))
            case 0xC0: return .nil
            case 0xC1: throw .msgpack("reserved byte 0xc1 at offset \(at)")
            case 0xC2: return .bool(false)
            case 0xC3: return .bool(true)
            case 0xC4, 0xC5, 0xC6:
                let n = try bigEndian(1 << Int(b - 0xC4))
                return .binary(try take(try count(n, minimumBytes: 1)))
            case 0xC7, 0xC8, 0xC9:
                let n = try bigEndian(1 << Int(b - 0xC7))
                let type = Int8(bitPattern: try byte())
                return .extension(type: type, data: try take(try count(n, minimumBytes: 1)))
            case 0xCA: return .float32(Float(bitPattern: UInt32(try bigEndian(4))))
            case 0xCB: return .float64(Double(bitPattern: try bigEndian(8)))
            case 0xCC, 0xCD, 0xCE, 0xCF: return .unsigned(try bigEndian(1 << Int(b - 0xCC)))
            case 0xD0: return .int(Int(Int8(truncatingIfNeeded: try bigEndian(1))))
            case 0xD1: return .int(Int(Int16(truncatingIfNeeded: try bigEndian(2))))
            case 0xD2: return .int(Int(Int32(truncatingIfNeeded: try bigEndian(4))))
            case 0xD3:
                let v = Int64(bitPattern: try bigEndian(8))
                return v < 0 ? .signed(v) : .unsigned(UInt64(v))
            case 0xD4, 0xD5, 0xD6, 0xD7, 0xD8:
                let type = Int8(bitPattern: try byte())
                return .extension(type: type, data: try take(1 << Int(b - 0xD4)))
            case 0xD9, 0xDA, 0xDB:
                let n = try bigEndian(1 << Int(b - 0xD9))
                return .string(try string(try count(n, minimumBytes: 1)))
            case 0xDC, 0xDD:
                let n = try bigEndian(b == 0xDC ? 2 : 4)
                return try array(try count(n, minimumBytes: 1), depth: depth)
            case 0xDE, 0xDF:
                let n = try bigEndian(b == 0xDE ? 2 : 4)
                return try map(try count(n, minimumBytes: 2), depth: depth)
            default: // 0xE0...0xFF, negative fixint
                return .signed(Int64(Int8(bitPattern: b)))
            }
        }

        mutating func array(_ n: Int, depth: Int) throws(KVEventsError) -> MessagePackValue {
            guard depth < limits.maxDepth else { throw .msgpack("nesting deeper than \(limits.maxDepth) at offset \(offset)") }
            let n = try count(UInt64(n), minimumBytes: 1)
            var items: [MessagePackValue] = []
            items.reserveCapacity(n)
            for _ in 0..<n { items.append(try value(depth: depth + 1)) }
            return .array(items)
        }

        mutating func map(_ n: Int, depth: Int) throws(KVEventsError) -> MessagePackValue {
            guard depth < limits.maxDepth else { throw .msgpack("nesting deeper than \(limits.maxDepth) at offset \(offset)") }
            let n = try count(UInt64(n), minimumBytes: 2)
            var entries: [MessagePackValue.MapEntry] = []
            entries.reserveCapacity(n)
            for _ in 0..<n {
                let k = try value(depth: depth + 1)
                let v = try value(depth: depth + 1)
                entries.append(.init(k, v))
            }
            return .map(entries)
        }
    }
}
