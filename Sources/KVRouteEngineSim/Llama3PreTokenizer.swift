/// Llama-3's pre-tokenizer: cuts text into the pieces BPE then merges on its own, exactly as
/// the `Split` step of Llama-3's `tokenizer.json` does with its pattern
///
///     (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
///
/// Written out by hand over Unicode scalars (one character class per scalar, then one pass)
/// because the lookahead and Unicode classes make a general regex engine slow here. The
/// classes follow the Oniguruma engine the Rust `tokenizers` crate uses: `\s` is the
/// White_Space property, `\p{L}` and `\p{N}` are the general categories, and the
/// case-insensitive contractions also accept U+017F (long s), which case-folds to `s`.
/// Oniguruma's tables stop at Unicode 16.0, so scalars assigned later (Swift knows Unicode 17)
/// count as `other` there and here; checked against `tokenizers` for every scalar.
enum Llama3PreTokenizer {
    /// The newest Unicode version whose letters and numbers the pattern's classes know.
    static let unicodeVersion = (major: 16, minor: 0)

    /// What the pattern can tell apart about one scalar.
    enum CharClass: UInt8 {
        case letter
        case number
        /// `\s` other than `\r` and `\n`.
        case space
        /// `\r` or `\n`.
        case newline
        /// Anything else: punctuation, symbols, marks, controls.
        case other
    }

    static func charClass(_ v: UInt32) -> CharClass {
        if v < 0x80 { return asciiClasses[Int(v)] }
        guard let scalar = Unicode.Scalar(v) else { return .other }
        let p = scalar.properties
        if p.isWhitespace { return .space }
        guard let age = p.age, (age.major, age.minor) <= unicodeVersion else { return .other }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        default:
            return .other
        }
    }

    private static let asciiClasses: [CharClass] = (0..<128).map { v -> CharClass in
        switch v {
        case 0x0A, 0x0D: return .newline
        case 0x09, 0x0B, 0x0C, 0x20: return .space
        case 0x30...0x39: return .number
        case 0x41...0x5A, 0x61...0x7A: return .letter
        default: return .other
        }
    }

    /// Calls `body` with the scalar range of each piece of `scalars`, in order; the pieces
    /// cover the input exactly. `classes[i]` is `charClass(scalars[i])`.
    static func split(_ scalars: UnsafeBufferPointer<UInt32>, classes: UnsafeBufferPointer<CharClass>, _ body: (Range<Int>) -> Void) {
        var i = 0
        while i < scalars.count {
            let end = pieceEnd(at: i, scalars, classes)
            body(i..<end)
            i = end
        }
    }

    /// End of the match starting at `i`: the first alternative of the pattern that matches
    /// there, with the greedy and backtracking choices a backtracking regex engine makes.
    @inline(__always)
    private static func pieceEnd(at i: Int, _ s: UnsafeBufferPointer<UInt32>, _ c: UnsafeBufferPointer<CharClass>) -> Int {
        let n = s.count
        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if s[i] == 0x27, i + 1 < n {
            switch s[i + 1] {
            case 0x73, 0x53, 0x17F, 0x74, 0x54, 0x6D, 0x4D, 0x64, 0x44:  // s S ſ t T m M d D
                return i + 2
            case 0x72, 0x52, 0x76, 0x56:  // r R v V, then e E
                if i + 2 < n, s[i + 2] == 0x65 || s[i + 2] == 0x45 { return i + 3 }
            case 0x6C, 0x4C:  // l L, then l L
                if i + 2 < n, s[i + 2] == 0x6C || s[i + 2] == 0x4C { return i + 3 }
            default:
                break
            }
        }
        let first = c[i]
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if first == .letter {
            return run(of: .letter, from: i + 1, c)
        }
        if first == .space || first == .other, i + 1 < n, c[i + 1] == .letter {
            return run(of: .letter, from: i + 2, c)
        }
        // \p{N}{1,3}
        if first == .number {
            var j = i + 1
            while j < n, j < i + 3, c[j] == .number { j += 1 }
            return j
        }
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        var otherStart = -1
        if first == .other {
            otherStart = i
        } else if s[i] == 0x20, i + 1 < n, c[i + 1] == .other {
            otherStart = i + 1
        }
        if otherStart >= 0 {
            let j = run(of: .other, from: otherStart + 1, c)
            return run(of: .newline, from: j, c)
        }
        // Only whitespace is left: find the run of it.
        var k = i + 1
        while k < n, c[k] == .space || c[k] == .newline { k += 1 }
        // \s*[\r\n]+ : up to and including the run's last newline.
        var m = k - 1
        while m >= i, c[m] != .newline { m -= 1 }
        if m >= i { return m + 1 }
        // \s+(?!\S) : the run, minus its last scalar when a non-space follows it.
        if k == n { return k }
        if k - 1 > i { return k - 1 }
        // \s+
        return k
    }

    @inline(__always)
    private static func run(of cls: CharClass, from start: Int, _ c: UnsafeBufferPointer<CharClass>) -> Int {
        var j = start
        while j < c.count, c[j] == cls { j += 1 }
        return j
    }
}
