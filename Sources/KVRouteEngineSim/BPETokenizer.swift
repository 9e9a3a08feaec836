import Synchronization

/// A byte-level BPE tokenizer that gives the token ids a real engine gives: loaded from a
/// HuggingFace `tokenizer.json` (see ``llama3(from:)`` and ``locateLlama3(searchRoots:)``),
/// it encodes the way the `tokenizers` library does for Llama-3.
///
/// Encoding runs in three steps:
/// 1. special tokens (`<|begin_of_text|>`, `<|eot_id|>`, ...) are found in the text, longest
///    first, and become their ids; the text between them is encoded on its own;
/// 2. ``Llama3PreTokenizer`` cuts that text into pieces (words with their leading space,
///    runs of up to three digits, punctuation, whitespace);
/// 3. each piece's UTF-8 bytes start as one token per byte and are merged pair by pair, lowest
///    merge rank first (leftmost on ties), until no pair of neighbours has a merge.
///
/// Prefix caching cares because real token boundaries move with the text: "Hello world" and
/// "Hello worlds" share fewer tokens than bytes, and numbers, code and non-English text cost
/// very different numbers of tokens per byte.
public final class BPETokenizer: Tokenizer {
    /// UTF-8 bytes of each token id (empty for ids the vocabulary lacks).
    let tokenBytes: [[UInt8]]
    /// Id of the token for each single byte.
    let byteTokens: [UInt32]
    /// Merge table: `left << 32 | right` to `rank << 32 | merged`.
    let merges: [UInt64: UInt64]
    /// Whole pieces that are one token skip merging (the `ignore_merges` model option).
    let wholePieces: [[UInt8]: UInt32]?
    let specials: SpecialTokenTrie
    /// Ids of the added tokens by their text.
    public let specialTokens: [String: UInt32]
    private let cache = Mutex(PieceCache())

    init(tokenBytes: [[UInt8]], byteTokens: [UInt32], merges: [UInt64: UInt64], wholePieces: [[UInt8]: UInt32]?, specialTokens: [String: UInt32]) {
        self.tokenBytes = tokenBytes
        self.byteTokens = byteTokens
        self.merges = merges
        self.wholePieces = wholePieces
        self.specialTokens = specialTokens
        self.specials = SpecialTokenTrie(specialTokens)
    }

    /// Number of token ids, added tokens included.
    public var vocabularySize: Int { tokenBytes.count }

    /// Token ids of `text`. Special-token text in `text` becomes the special token, as on
    /// vLLM; no begin-of-text token is added.
    public func encode(_ text: String) -> [UInt32] {
        var text = text
        text.makeContiguousUTF8()
        var out: [UInt32] = []
        text.utf8.withContiguousStorageIfAvailable { bytes in
            out.reserveCapacity(bytes.count / 3 + 4)
            var scratch = Scratch()
            var start = 0
            specials.scan(bytes) { range, id in
                if range.lowerBound > start {
                    encodeOrdinary(UnsafeBufferPointer(rebasing: bytes[start..<range.lowerBound]), into: &out, &scratch)
                }
                out.append(id)
                start = range.upperBound
            }
            if start < bytes.count {
                encodeOrdinary(UnsafeBufferPointer(rebasing: bytes[start...]), into: &out, &scratch)
            }
        }
        return out
    }

    /// Text of `tokens`: their bytes joined, with invalid UTF-8 (a token sequence cut inside a
    /// character) replaced by U+FFFD. Ids outside the vocabulary are skipped.
    public func decode(_ tokens: [UInt32]) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(tokens.count * 4)
        for t in tokens where Int(t) < tokenBytes.count {
            bytes.append(contentsOf: tokenBytes[Int(t)])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Buffers reused across the pieces of one `encode` call.
    struct Scratch {
        var scalars: [UInt32] = []
        var offsets: [Int] = []
        var classes: [Llama3PreTokenizer.CharClass] = []
        var symbols: [Symbol] = []
        var heap = MergeHeap()
        var piece: [UInt32] = []
    }

    /// Encodes text that holds no special tokens: pre-tokenize, then BPE each piece.
    private func encodeOrdinary(_ bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt32], _ scratch: inout Scratch) {
        scratch.scalars.removeAll(keepingCapacity: true)
        scratch.offsets.removeAll(keepingCapacity: true)
        scratch.classes.removeAll(keepingCapacity: true)
        var i = 0
        while i < bytes.count {
            let (scalar, length) = Self.decodeScalar(bytes, at: i)
            scratch.scalars.append(scalar)
            scratch.offsets.append(i)
            scratch.classes.append(Llama3PreTokenizer.charClass(scalar))
            i += length
        }
        scratch.offsets.append(bytes.count)
        let scalars = scratch.scalars, classes = scratch.classes, offsets = scratch.offsets
        scalars.withUnsafeBufferPointer { s in
            classes.withUnsafeBufferPointer { c in
                Llama3PreTokenizer.split(s, classes: c) { range in
                    let piece = UnsafeBufferPointer(rebasing: bytes[offsets[range.lowerBound]..<offsets[range.upperBound]])
                    encodePiece(piece, into: &out, &scratch)
                }
            }
        }
    }

    /// One UTF-8 scalar at `i` (the bytes come from a Swift String, so they are valid).
    @inline(__always)
    private static func decodeScalar(_ b: UnsafeBufferPointer<UInt8>, at i: Int) -> (UInt32, Int) {
        let b0 = UInt32(b[i])
        if b0 < 0x80 { return (b0, 1) }
        if b0 < 0xE0 { return ((b0 & 0x1F) << 6 | UInt32(b[i + 1] & 0x3F), 2) }
        if b0 < 0xF0 { return ((b0 & 0x0F) << 12 | UInt32(b[i + 1] & 0x3F) << 6 | UInt32(b[i + 2] & 0x3F), 3) }
        return ((b0 & 0x07) << 18 | UInt32(b[i + 1] & 0x3F) << 12 | UInt32(b[i + 2] & 0x3F) << 6 | UInt32(b[i + 3] & 0x3F), 4)
    }

    private func encodePiece(_ piece: UnsafeBufferPointer<UInt8>, into out: inout [UInt32], _ scratch: inout Scratch) {
        if piece.count == 1 {
            out.append(byteTokens[Int(piece[0])])
            return
        }
        let key = Array(piece)
        if let hit = cache.withLock({ $0.lookup(key) }) {
            out.append(contentsOf: hit)
            return
        }
        scratch.piece.removeAll(keepingCapacity: true)
        if let whole = wholePieces?[key] {
            scratch.piece.append(whole)
        } else {
            merge(piece, into: &scratch)
        }
        out.append(contentsOf: scratch.piece)
        let ids = scratch.piece
        cache.withLock { $0.insert(key, ids) }
    }
}

/// Recently seen pieces and their tokens, in two generations: a lookup that hits the old
/// generation promotes the entry, and a full new generation replaces the old one. Bounded,
/// and frequent pieces (common words, indentation) stay.
struct PieceCache: ~Copyable {
    static let generationSize = 16_384
    private var current: [[UInt8]: [UInt32]] = [:]
    private var previous: [[UInt8]: [UInt32]] = [:]

    mutating func lookup(_ key: [UInt8]) -> [UInt32]? {
        if let ids = current[key] { return ids }
        guard let ids = previous[key] else { return nil }
        insert(key, ids)
        return ids
    }

    mutating func insert(_ key: [UInt8], _ ids: [UInt32]) {
        if current.count >= Self.generationSize {
            previous = current
            current = [:]
        }
        current[key] = ids
    }
}
