/// Finds added tokens (`<|eot_id|>` and the like) in UTF-8 text: leftmost match first, and
/// the longest one where several start at the same byte, as the `tokenizers` library does.
struct SpecialTokenTrie: Sendable {
    private struct Node: Sendable {
        var children: [UInt8: Int32] = [:]
        var token: UInt32?
    }

    private var nodes: [Node] = [Node()]
    /// Bytes that start some token: most text bytes are rejected with one array read.
    private var starts = [Bool](repeating: false, count: 256)

    init(_ tokens: [String: UInt32]) {
        for (text, id) in tokens where !text.isEmpty {
            var node = 0
            for b in text.utf8 {
                if let child = nodes[node].children[b] {
                    node = Int(child)
                } else {
                    nodes.append(Node())
                    nodes[node].children[b] = Int32(nodes.count - 1)
                    node = nodes.count - 1
                }
            }
            nodes[node].token = id
            starts[Int(text.utf8.first!)] = true
        }
    }

    /// Calls `body` with each match's byte range and token id, left to right.
    func scan(_ bytes: UnsafeBufferPointer<UInt8>, _ body: (Range<Int>, UInt32) -> Void) {
        var i = 0
        while i < bytes.count {
            guard starts[Int(bytes[i])] else {
                i += 1
                continue
            }
            var node = 0
            var j = i
            var best: (end: Int, id: UInt32)?
            while j < bytes.count, let child = nodes[node].children[bytes[j]] {
                node = Int(child)
                j += 1
                if let id = nodes[node].token { best = (j, id) }
            }
            if let best {
                body(i..<best.end, best.id)
                i = best.end
            } else {
                i += 1
            }
        }
    }
}
