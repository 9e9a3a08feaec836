/// Turns text into token ids. A real tokenizer can be plugged in by conforming to this
/// protocol; the engine only needs ids to hash and lengths to time.
public protocol Tokenizer: Sendable {
    /// Token ids of `text` (no special tokens added).
    func encode(_ text: String) -> [UInt32]
    /// Text of a token id, when it is one this tokenizer produced.
    func decode(_ tokens: [UInt32]) -> String
}

/// The built-in deterministic tokenizer.
///
/// Rule: the UTF-8 bytes of a text are cut into consecutive pieces of 4 bytes (the last piece
/// may be shorter); each piece is one token whose id is the FNV-1a hash of its bytes, mapped
/// into [256, 128000). English text therefore costs exactly one token per 4 characters,
/// close to Llama-3's ~4 characters per token, and equal texts always give equal ids, which
/// is all prefix caching needs. Each chat message is encoded on its own (see
/// ``Llama3ChatTemplate``), so shared system prompts and growing histories share token
/// prefixes just as they do on a real engine.
public struct ApproximateTokenizer: Tokenizer {
    public static let bytesPerToken = 4
    public static let vocabularySize: UInt32 = 128_000

    public init() {}

    public func encode(_ text: String) -> [UInt32] {
        var text = text
        text.makeContiguousUTF8()
        return text.utf8.withContiguousStorageIfAvailable { buf in
            var out: [UInt32] = []
            out.reserveCapacity(buf.count / Self.bytesPerToken + 1)
            var i = 0
            while i < buf.count {
                let end = min(i + Self.bytesPerToken, buf.count)
                out.append(Self.id(of: buf[i..<end]))
                i = end
            }
            return out
        } ?? []
    }

    public func decode(_ tokens: [UInt32]) -> String {
        var bytes: [UInt8] = []
        for t in tokens {
            if let word = OutputVocabulary.wordByToken[t] { bytes.append(contentsOf: word.utf8) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    @inline(__always)
    static func id<C: Collection>(of piece: C) -> UInt32 where C.Element == UInt8 {
        var h: UInt32 = 0x811C_9DC5
        for b in piece {
            h ^= UInt32(b)
            h = h &* 0x0100_0193
        }
        return 256 + h % (vocabularySize - 256)
    }
}

/// The words a simulated engine "generates". Each is a space plus three letters: exactly one
/// token under ``ApproximateTokenizer``, so generated text re-encodes to the very token ids
/// that decode produced and a follow-up turn that quotes the answer hits the blocks decode
/// filled.
public enum OutputVocabulary {
    public static let words: [String] = [
        " the", " and", " for", " are", " but", " not", " you", " all", " any", " can",
        " had", " her", " was", " one", " our", " out", " day", " get", " has", " him",
        " his", " how", " man", " new", " now", " old", " see", " two", " way", " who",
        " boy", " did", " its", " let", " put", " say", " she", " too", " use", " key",
        " map", " row", " set", " sum", " top", " run", " fit", " hit", " low", " max",
        " min", " net", " pod", " raw", " end", " big", " few", " own", " yes", " why",
        " far", " act", " add", " age",
    ]
    public static let tokens: [UInt32] = words.map { ApproximateTokenizer.id(of: Array($0.utf8)) }
    /// The words' token ids under `tokenizer`, keeping the words it encodes as one token (all of
    /// them under Llama-3's BPE): generated text then re-encodes to the ids decode produced.
    public static func tokens(for tokenizer: any Tokenizer) -> [UInt32] {
        if tokenizer is ApproximateTokenizer { return tokens }
        return words.compactMap { word in
            let ids = tokenizer.encode(word)
            return ids.count == 1 ? ids[0] : nil
        }
    }
    static let wordByToken: [UInt32: String] = Dictionary(zip(tokens, words), uniquingKeysWith: { a, _ in a })
}
