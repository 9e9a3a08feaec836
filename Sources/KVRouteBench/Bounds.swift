/// Hit-rate bounds computed from the requests a run issued, with their answers.
public enum Bounds {
    /// Chained 64-bit hashes of every full block (cheap stand-in for the engine's SHA-256
    /// chain: equal token prefixes give equal chains either way).
    static func blocks(_ tokens: [UInt32], blockSize: Int) -> [UInt64] {
        var out: [UInt64] = []
        out.reserveCapacity(tokens.count / blockSize)
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        var i = 0
        while i + blockSize <= tokens.count {
            for t in tokens[i..<(i + blockSize)] { h = (h ^ UInt64(t)) &* 0x0000_0100_0000_01B3 }
            out.append(h)
            i += blockSize
        }
        return out
    }

    /// The hit rate of one engine with an unlimited cache: every block ever computed stays.
    /// No routing policy can beat it.
    public static func upperBound(_ issued: [(tokens: [UInt32], answer: [UInt32])], blockSize: Int) -> Double {
        var seen = Set<UInt64>()
        var hits = 0, queries = 0
        for (tokens, answer) in issued {
            let b = blocks(tokens, blockSize: blockSize)
            let cap = (tokens.count - 1) / blockSize
            var n = 0
            while n < min(cap, b.count) && seen.contains(b[n]) { n += 1 }
            hits += n * blockSize
            queries += tokens.count
            seen.formUnion(blocks(tokens + answer, blockSize: blockSize))
        }
        return queries == 0 ? 0 : Double(hits) / Double(queries)
    }

    /// The hit rate of one LRU cache as large as the whole cluster's (`blocks` in total):
    /// what perfect placement could keep without replicating anything.
    public static func clusterCapacity(_ issued: [(tokens: [UInt32], answer: [UInt32])], blockSize: Int, capacity: Int) -> Double {
        var stamp: [UInt64: Int] = [:]
        var order: [(UInt64, Int)] = []
        var head = 0
        var clock = 0
        var hits = 0, queries = 0
        for (tokens, answer) in issued {
            let b = blocks(tokens, blockSize: blockSize)
            let cap = (tokens.count - 1) / blockSize
            var n = 0
            while n < min(cap, b.count) && stamp[b[n]] != nil { n += 1 }
            hits += n * blockSize
            queries += tokens.count
            for h in blocks(tokens + answer, blockSize: blockSize) {
                clock += 1
                stamp[h] = clock
                order.append((h, clock))
            }
            while stamp.count > capacity && head < order.count {
                let (h, s) = order[head]
                head += 1
                if stamp[h] == s { stamp[h] = nil }
            }
            if head > 100_000 { order.removeFirst(head); head = 0 }
        }
        return queries == 0 ? 0 : Double(hits) / Double(queries)
    }
}
