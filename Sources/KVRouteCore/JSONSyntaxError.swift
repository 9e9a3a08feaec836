/// Why a request body is not JSON (RFC 8259), and the byte where the reader stopped: the
/// cause inside the ``KVRouteError`` that refuses the body.
package struct JSONSyntaxError: Error, Sendable, Hashable, CustomStringConvertible {
    package struct Code: Hashable, Sendable, CustomStringConvertible {
        package let name: String
        package init(_ name: String) { self.name = name }
        package var description: String { name }

        /// The body ends inside a value (or is empty).
        package static let unexpectedEnd = Code("unexpected end of the body")
        /// A byte that no JSON value, separator or whitespace may start with.
        package static let unexpectedCharacter = Code("unexpected character")
        /// A `,` right before `]` or `}`: RFC 8259 allows none.
        package static let trailingComma = Code("trailing comma")
        /// Something after the top-level value.
        package static let trailingData = Code("data after the JSON value")
        /// A number that breaks the grammar (`01`, `1.`, `.5`, `+1`, `-`, `1e`).
        package static let invalidNumber = Code("invalid number")
        /// A backslash followed by something other than `"\/bfnrtu`, or `\u` without 4 hex digits.
        package static let invalidEscape = Code("invalid escape")
        /// A `\u` escape of half a surrogate pair: it names no character.
        package static let loneSurrogate = Code("unpaired surrogate escape")
        /// A raw control character (U+0000–U+001F) inside a string.
        package static let controlCharacter = Code("unescaped control character in a string")
        /// Bytes inside a string that are not UTF-8.
        package static let invalidUTF8 = Code("invalid UTF-8")
        /// Arrays and objects nested deeper than ``JSONScanner/maximumDepth``.
        package static let tooDeep = Code("nesting too deep")
    }

    package var code: Code
    /// Offset in bytes from the start of the body.
    package var offset: Int

    package init(_ code: Code, at offset: Int) {
        self.code = code
        self.offset = offset
    }

    package var description: String { "\(code) at byte \(offset)" }
}
