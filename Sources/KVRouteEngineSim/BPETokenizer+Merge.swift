/// The BPE merge loop over one piece, the way the `tokenizers` library runs it: every pair of
/// neighbouring symbols that has a merge waits in a priority queue ordered by (merge rank,
/// position); the best is merged, the pairs it forms with its new neighbours join the queue,
/// and entries that no longer describe a live pair are skipped when they come up.
extension BPETokenizer {
    struct Symbol {
        var id: UInt32
        var prev: Int32
        var next: Int32
        var alive: Bool
    }

    /// Leaves the tokens of `piece` (at least two bytes) in `scratch.piece`.
    func merge(_ piece: UnsafeBufferPointer<UInt8>, into scratch: inout Scratch) {
        let n = piece.count
        scratch.symbols.removeAll(keepingCapacity: true)
        for (i, b) in piece.enumerated() {
            scratch.symbols.append(Symbol(id: byteTokens[Int(b)], prev: Int32(i - 1), next: i + 1 < n ? Int32(i + 1) : -1, alive: true))
        }
        scratch.heap.removeAll()
        for i in 0..<(n - 1) {
            if let m = merges[Self.pairKey(scratch.symbols[i].id, scratch.symbols[i + 1].id)] {
                scratch.heap.push(MergeHeap.Entry(rank: UInt32(m >> 32), position: UInt32(i), merged: UInt32(truncatingIfNeeded: m)))
            }
        }
        scratch.symbols.withUnsafeMutableBufferPointer { sym in
            while let top = scratch.heap.pop() {
                let pos = Int(top.position)
                guard sym[pos].alive, sym[pos].next >= 0 else { continue }
                let nextPos = Int(sym[pos].next)
                // A stale entry: this position's pair has changed since it was queued.
                guard let m = merges[Self.pairKey(sym[pos].id, sym[nextPos].id)], UInt32(truncatingIfNeeded: m) == top.merged else { continue }
                sym[pos].id = top.merged
                sym[nextPos].alive = false
                let after = sym[nextPos].next
                sym[pos].next = after
                if after >= 0 { sym[Int(after)].prev = Int32(pos) }
                let before = sym[pos].prev
                if before >= 0, let m = merges[Self.pairKey(sym[Int(before)].id, top.merged)] {
                    scratch.heap.push(MergeHeap.Entry(rank: UInt32(m >> 32), position: UInt32(before), merged: UInt32(truncatingIfNeeded: m)))
                }
                if after >= 0, let m = merges[Self.pairKey(top.merged, sym[Int(after)].id)] {
                    scratch.heap.push(MergeHeap.Entry(rank: UInt32(m >> 32), position: UInt32(pos), merged: UInt32(truncatingIfNeeded: m)))
                }
            }
            var i: Int32 = 0
            while i >= 0 {
                scratch.piece.append(sym[Int(i)].id)
                i = sym[Int(i)].next
            }
        }
    }

    @inline(__always)
    static func pairKey(_ left: UInt32, _ right: UInt32) -> UInt64 {
        UInt64(left) << 32 | UInt64(right)
    }
}

/// A binary min-heap of queued merges, lowest rank first, then leftmost.
struct MergeHeap {
    struct Entry {
        /// `rank << 32 | position`: one comparison orders by rank, then position.
        var order: UInt64
        var merged: UInt32

        init(rank: UInt32, position: UInt32, merged: UInt32) {
            self.order = UInt64(rank) << 32 | UInt64(position)
            self.merged = merged
        }

        var position: UInt32 { UInt32(truncatingIfNeeded: order) }
    }

    private var items: [Entry] = []

    mutating func removeAll() { items.removeAll(keepingCapacity: true) }

    mutating func push(_ e: Entry) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i].order < items[parent].order else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Entry? {
        guard let last = items.popLast() else { return nil }
        guard !items.isEmpty else { return last }
        let top = items[0]
        items[0] = last
        var i = 0
        let n = items.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var best = i
            if l < n, items[l].order < items[best].order { best = l }
            if r < n, items[r].order < items[best].order { best = r }
            if best == i { break }
            items.swapAt(i, best)
            i = best
        }
        return top
    }
}
