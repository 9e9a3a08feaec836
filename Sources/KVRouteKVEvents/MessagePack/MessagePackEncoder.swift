/// Writes MessagePack in its shortest forms, as msgpack-python and msgspec do: positive
/// integers as unsigned, strings as `str`, bytes as `bin`, doubles as float 64.
public struct MessagePackEncoder: Sendable {
    public init() {}

    public func encode(_ value: MessagePackValue) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        Self.write(value, into: &out)
        return out
    }

    public static func write(_ value: MessagePackValue, into out: inout [UInt8]) {
        switch value {
        case .nil: out.append(0xC0)
        case .bool(let b): out.append(b ? 0xC3 : 0xC2)
        case .unsigned(let u): writeUnsigned(u, into: &out)
        case .signed(let s):
            if s >= 0 { writeUnsigned(UInt64(s), into: &out) }
            else if s >= -32 { out.append(UInt8(bitPattern: Int8(s))) }
            else if s >= Int64(Int8.min) { out.append(0xD0); bigEndian(UInt64(UInt8(bitPattern: Int8(s))), 1, &out) }
            else if s >= Int64(Int16.min) { out.append(0xD1); bigEndian(UInt64(UInt16(bitPattern: Int16(s))), 2, &out) }
            else if s >= Int64(Int32.min) { out.append(0xD2); bigEndian(UInt64(UInt32(bitPattern: Int32(s))), 4, &out) }
            else { out.append(0xD3); bigEndian(UInt64(bitPattern: s), 8, &out) }
        case .float32(let f): out.append(0xCA); bigEndian(UInt64(f.bitPattern), 4, &out)
        case .float64(let d): out.append(0xCB); bigEndian(d.bitPattern, 8, &out)
        case .string(let s):
            let n = s.utf8.count
            if n < 32 { out.append(0xA0 | UInt8(n)) } else { header(n, 0xD9, 0xDA, 0xDB, &out) }
            out.append(contentsOf: s.utf8)
        case .binary(let b):
            header(b.count, 0xC4, 0xC5, 0xC6, &out)
            out.append(contentsOf: b)
        case .array(let items):
            if items.count < 16 { out.append(0x90 | UInt8(items.count)) } else { header(items.count, nil, 0xDC, 0xDD, &out) }
            for item in items { write(item, into: &out) }
        case .map(let entries):
            if entries.count < 16 { out.append(0x80 | UInt8(entries.count)) } else { header(entries.count, nil, 0xDE, 0xDF, &out) }
            for e in entries {
                write(e.key, into: &out)
                write(e.value, into: &out)
            }
        case .extension(let type, let data):
            switch data.count {
            case 1: out.append(0xD4)
            case 2: out.append(0xD5)
            case 4: out.append(0xD6)
            case 8: out.append(0xD7)
            case 16: out.append(0xD8)
            default: header(data.count, 0xC7, 0xC8, 0xC9, &out)
            }
            out.append(UInt8(bitPattern: type))
            out.append(contentsOf: data)
        }
    }

    static func writeUnsigned(_ u: UInt64, into out: inout [UInt8]) {
        switch u {
        case 0..<0x80: out.append(UInt8(u))
        case 0x80..<0x100: out.append(0xCC); out.append(UInt8(u))
        case 0x100..<0x1_0000: out.append(0xCD); bigEndian(u, 2, &out)
        case 0x1_0000..<0x1_0000_0000: out.append(0xCE); bigEndian(u, 4, &out)
        default: out.append(0xCF); bigEndian(u, 8, &out)
        }
    }

    /// A length header: the 8-bit form when allowed (`short` non-nil), else 16 or 32 bits.
    static func header(_ n: Int, _ short: UInt8?, _ medium: UInt8, _ long: UInt8, _ out: inout [UInt8]) {
        if let short, n < 0x100 { out.append(short); out.append(UInt8(n)) }
        else if n < 0x1_0000 { out.append(medium); bigEndian(UInt64(n), 2, &out) }
        else { out.append(long); bigEndian(UInt64(n), 4, &out) }
    }

    static func bigEndian(_ v: UInt64, _ width: Int, _ out: inout [UInt8]) {
        for i in stride(from: width - 1, through: 0, by: -1) { out.append(UInt8(truncatingIfNeeded: v >> UInt64(i * 8))) }
    }
}
