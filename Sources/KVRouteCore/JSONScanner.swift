/// A strict, single-pass JSON (RFC 8259) reader over UTF-8 bytes that builds nothing it is
/// not asked for: the caller walks the document with ``next()``, ``nextMember(_:)`` and
/// ``nextElement(_:)``, reads the few strings it needs and ``skipValue()``s the rest, which
/// is still checked in full (grammar, escapes, UTF-8), so a body is accepted or refused as a
/// whole, not only in the fields routing reads.
///
/// Nesting is bounded by ``maximumDepth`` (the same bound as Foundation's JSONSerialization),
/// so a hostile body of a million `[` costs one error, not the stack.
///
/// The bytes are borrowed: a scanner lives inside `withUnsafeBufferPointer` and never escapes it.
struct JSONScanner {
    /// Deepest nesting of arrays and objects accepted.
    static let maximumDepth = 512

    let bytes: UnsafeBufferPointer<UInt8>
    private(set) var index = 0
    private var depth = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    /// A member name: a span of the body when it has no escapes (the usual case), else its
    /// unescaped bytes.
    enum Key {
        case span(Range<Int>)
        case unescaped([UInt8])
    }

    // MARK: Structure

    /// Skips a UTF-8 byte order mark at the start (RFC 8259 §8.1 lets a parser ignore it).
    mutating func skipByteOrderMark() {
        if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { index = 3 }
    }

    /// The first byte of the next token, after whitespace; not consumed.
    mutating func next() throws(JSONSyntaxError) -> UInt8 {
        skipWhitespace()
        guard index < bytes.count else { throw JSONSyntaxError(.unexpectedEnd, at: index) }
        return bytes[index]
    }

    /// Requires that only whitespace follows the top-level value.
    mutating func finish() throws(JSONSyntaxError) {
        skipWhitespace()
        guard index == bytes.count else { throw JSONSyntaxError(.trailingData, at: index) }
    }

    /// Consumes the `{` or `[` at ``next()``; then ``nextMember(_:)`` or ``nextElement(_:)``
    /// until they return nil or false.
    mutating func enterContainer() throws(JSONSyntaxError) {
        depth += 1
        guard depth <= Self.maximumDepth else { throw JSONSyntaxError(.tooDeep, at: index) }
        index += 1
    }

    /// The next member's name, with the scanner at its value (which the caller must read or
    /// skip); nil after the closing `}`. `first` starts true for each object.
    mutating func nextMember(_ first: inout Bool) throws(JSONSyntaxError) -> Key? {
        var byte = try next()
        if first {
            first = false
            if byte == UInt8(ascii: "}") { return leave() }
        } else {
            switch byte {
            case UInt8(ascii: ","):
                index += 1
                byte = try next()
                if byte == UInt8(ascii: "}") { throw JSONSyntaxError(.trailingComma, at: index) }
            case UInt8(ascii: "}"): return leave()
            default: throw JSONSyntaxError(.unexpectedCharacter, at: index)
            }
        }
        guard byte == UInt8(ascii: "\"") else { throw JSONSyntaxError(.unexpectedCharacter, at: index) }
        let key = try scanString(keeping: true) ?? .span(index..<index)
        guard try next() == UInt8(ascii: ":") else { throw JSONSyntaxError(.unexpectedCharacter, at: index) }
        index += 1
        return key
    }

    /// Whether another element follows, with the scanner at it; false after the closing `]`.
    /// `first` starts true for each array.
    mutating func nextElement(_ first: inout Bool) throws(JSONSyntaxError) -> Bool {
        let byte = try next()
        if first {
            first = false
            if byte == UInt8(ascii: "]") { return leave() != nil }
            return true
        }
        switch byte {
        case UInt8(ascii: ","):
            index += 1
            if try next() == UInt8(ascii: "]") { throw JSONSyntaxError(.trailingComma, at: index) }
            return true
        case UInt8(ascii: "]"): return leave() != nil
        default: throw JSONSyntaxError(.unexpectedCharacter, at: index)
        }
    }

    /// Consumes a closing bracket; always nil (so `nextMember` can return it).
    private mutating func leave() -> Key? {
        index += 1
        depth -= 1
        return nil
    }

    /// Whether `key` is `name`.
    func key(_ key: Key, is name: StaticString) -> Bool {
        name.withUTF8Buffer { name in
            switch key {
            case .span(let range):
                guard range.count == name.count else { return false }
                var j = 0
                for i in range {
                    guard bytes[i] == name[j] else { return false }
                    j += 1
                }
                return true
            case .unescaped(let unescaped):
                return unescaped.elementsEqual(name)
            }
        }
    }

    // MARK: Values

    /// Checks the next value and steps over it without building it.
    mutating func skipValue() throws(JSONSyntaxError) {
        switch try next() {
        case UInt8(ascii: "\""): _ = try scanString(keeping: false)
        case UInt8(ascii: "{"):
            try enterContainer()
            var first = true
            while try nextMember(&first) != nil { try skipValue() }
        case UInt8(ascii: "["):
            try enterContainer()
            var first = true
            while try nextElement(&first) { try skipValue() }
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): _ = try scanNumber()
        default: throw JSONSyntaxError(.unexpectedCharacter, at: index)
        }
    }

    /// Reads the string at ``next()``.
    mutating func readString() throws(JSONSyntaxError) -> String {
        switch try scanString(keeping: true) {
        case .span(let range): String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        case .unescaped(let bytes): String(decoding: bytes, as: UTF8.self)
        case .none: ""
        }
    }

    /// Reads `true` or `false` at ``next()``; nil (consuming nothing) for anything else.
    mutating func readBool() throws(JSONSyntaxError) -> Bool? {
        switch try next() {
        case UInt8(ascii: "t"): try literal("true"); return true
        case UInt8(ascii: "f"): try literal("false"); return false
        default: return nil
        }
    }

    /// Reads the number at ``next()`` and returns its text as written.
    mutating func readNumber() throws(JSONSyntaxError) -> String {
        let range = try scanNumber()
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    private mutating func literal(_ word: StaticString) throws(JSONSyntaxError) {
        let start = index
        let matched = word.withUTF8Buffer { word in
            guard bytes.count - start >= word.count else { return false }
            for j in 0..<word.count where bytes[start + j] != word[j] { return false }
            return true
        }
        guard matched else {
            throw JSONSyntaxError(bytes.count - start < word.utf8CodeUnitCount ? .unexpectedEnd : .unexpectedCharacter, at: start)
        }
        index += word.utf8CodeUnitCount
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`; what follows is the
    /// caller's to check (so `01` fails there, at the `1`).
    private mutating func scanNumber() throws(JSONSyntaxError) -> Range<Int> {
        let start = index
        if byte(at: index) == UInt8(ascii: "-") { index += 1 }
        switch byte(at: index) {
        case UInt8(ascii: "0"): index += 1
        case UInt8(ascii: "1")...UInt8(ascii: "9"): skipDigits()
        default: throw numberError()
        }
        if byte(at: index) == UInt8(ascii: ".") {
            index += 1
            guard isDigit(byte(at: index)) else { throw numberError() }
            skipDigits()
        }
        if byte(at: index) | 0x20 == UInt8(ascii: "e") {
            index += 1
            if byte(at: index) == UInt8(ascii: "+") || byte(at: index) == UInt8(ascii: "-") { index += 1 }
            guard isDigit(byte(at: index)) else { throw numberError() }
            skipDigits()
        }
        return start..<index
    }

    private func numberError() -> JSONSyntaxError {
        JSONSyntaxError(index == bytes.count ? .unexpectedEnd : .invalidNumber, at: index)
    }

    // MARK: Strings

    /// Checks the string at ``next()`` and steps over it. When `keeping`, returns its content:
    /// a span of the body if it has no escapes, else the unescaped bytes.
    private mutating func scanString(keeping: Bool) throws(JSONSyntaxError) -> Key? {
        index += 1
        let start = index
        var run = start
        var unescaped: [UInt8]? = nil
        var i = start
        let count = bytes.count
        while true {
            // Plain ASCII runs are the bulk of a prompt: 8 bytes at a time while none of
            // them ends the run.
            if let base = bytes.baseAddress {
                while i + 8 <= count, !Self.endsRun(UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)) { i += 8 }
            }
            while i < count {
                let b = bytes[i]
                guard b >= 0x20, b < 0x80, b != UInt8(ascii: "\""), b != UInt8(ascii: "\\") else { break }
                i += 1
            }
            guard i < count else { throw JSONSyntaxError(.unexpectedEnd, at: i) }
            switch bytes[i] {
            case UInt8(ascii: "\""):
                index = i + 1
                guard keeping else { return nil }
                guard var out = unescaped else { return .span(start..<i) }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run..<i]))
                return .unescaped(out)
            case UInt8(ascii: "\\"):
                if keeping {
                    if unescaped == nil { unescaped = []; unescaped!.reserveCapacity(i - start + 64) }
                    unescaped!.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run..<i]))
                }
                i = try unescape(at: i, into: &unescaped)
                run = i
            case 0..<0x20:
                throw JSONSyntaxError(.controlCharacter, at: i)
            default:
                i = try validateUTF8(at: i)
            }
        }
    }

    /// Whether any of the 8 bytes in `word` is `"`, `\`, a control character or not ASCII
    /// (the classic "has a byte less than n" test, exact for "any").
    @inline(__always)
    private static func endsRun(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        func hasByteBelow(_ x: UInt64, _ n: UInt64) -> Bool { (x &- ones &* n) & ~x & highs != 0 }
        return word & highs != 0 || hasByteBelow(word, 0x20) || hasByteBelow(word ^ (ones &* 0x22), 1) || hasByteBelow(word ^ (ones &* 0x5C), 1)
    }

    /// Decodes the escape at `i` (a backslash), appending its UTF-8 to `out` when there is
    /// one; returns the index after it.
    private func unescape(at i: Int, into out: inout [UInt8]?) throws(JSONSyntaxError) -> Int {
        guard i + 1 < bytes.count else { throw JSONSyntaxError(.unexpectedEnd, at: i + 1) }
        let simple: UInt8
        switch bytes[i + 1] {
        case UInt8(ascii: "\""): simple = UInt8(ascii: "\"")
        case UInt8(ascii: "\\"): simple = UInt8(ascii: "\\")
        case UInt8(ascii: "/"): simple = UInt8(ascii: "/")
        case UInt8(ascii: "b"): simple = 0x08
        case UInt8(ascii: "f"): simple = 0x0C
        case UInt8(ascii: "n"): simple = 0x0A
        case UInt8(ascii: "r"): simple = 0x0D
        case UInt8(ascii: "t"): simple = 0x09
        case UInt8(ascii: "u"):
            var unit = try hex4(at: i + 2)
            var end = i + 6
            if unit >= 0xDC00 && unit <= 0xDFFF { throw JSONSyntaxError(.loneSurrogate, at: i) }
            if unit >= 0xD800 && unit <= 0xDBFF {
                guard byte(at: end) == UInt8(ascii: "\\"), byte(at: end + 1) == UInt8(ascii: "u") else {
                    throw JSONSyntaxError(.loneSurrogate, at: i)
                }
                let low = try hex4(at: end + 2)
                guard low >= 0xDC00 && low <= 0xDFFF else { throw JSONSyntaxError(.loneSurrogate, at: i) }
                unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                end += 6
            }
            if out != nil { out!.append(contentsOf: UTF8.encode(Unicode.Scalar(unit)!)!) }
            return end
        default: throw JSONSyntaxError(.invalidEscape, at: i)
        }
        out?.append(simple)
        return i + 2
    }

    /// The value of 4 hex digits at `i`.
    private func hex4(at i: Int) throws(JSONSyntaxError) -> UInt32 {
        guard i + 4 <= bytes.count else { throw JSONSyntaxError(.unexpectedEnd, at: bytes.count) }
        var value: UInt32 = 0
        for j in i..<(i + 4) {
            let b = bytes[j]
            let digit: UInt8
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = b - UInt8(ascii: "A") + 10
            default: throw JSONSyntaxError(.invalidEscape, at: j)
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    /// Checks the multi-byte UTF-8 sequence at `i` (RFC 3629: no overlong forms, no
    /// surrogates, nothing past U+10FFFF); returns the index after it.
    private func validateUTF8(at i: Int) throws(JSONSyntaxError) -> Int {
        let lead = bytes[i]
        let length: Int
        var low: UInt8 = 0x80, high: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; high = 0x9F
        case 0xF0: length = 4; low = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; high = 0x8F
        default: throw JSONSyntaxError(.invalidUTF8, at: i)
        }
        guard i + length <= bytes.count else { throw JSONSyntaxError(.invalidUTF8, at: i) }
        let second = bytes[i + 1]
        guard second >= low && second <= high else { throw JSONSyntaxError(.invalidUTF8, at: i) }
        for j in (i + 2)..<(i + length) where bytes[j] & 0xC0 != 0x80 { throw JSONSyntaxError(.invalidUTF8, at: i) }
        return i + length
    }

    // MARK: Bytes

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    private mutating func skipDigits() {
        while isDigit(byte(at: index)) { index += 1 }
    }

    /// The byte at `i`, or 0 past the end (0 matches no token).
    private func byte(at i: Int) -> UInt8 {
        i < bytes.count ? bytes[i] : 0
    }

    private func isDigit(_ b: UInt8) -> Bool {
        b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")
    }
}
