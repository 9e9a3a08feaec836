extension KVEventBatch {
    /// The payload in `format`, as msgspec writes it with `omit_defaults`: a field whose value
    /// is its default (`nil`) is left out of a map, and trailing ones out of an array.
    public func encoded(_ format: KVEventWireFormat = .vllm032) -> [UInt8] {
        MessagePackEncoder().encode(messagePack(format))
    }

    public func messagePack(_ format: KVEventWireFormat) -> MessagePackValue {
        let list = MessagePackValue.array(events.map { $0.messagePack(format.events) })
        let rank: MessagePackValue? = dataParallelRank.map { .int($0) }
        switch format.batch {
        case .positional:
            return .array([.float64(ts), list] + (rank.map { [$0] } ?? []))
        case .named:
            var entries = [MessagePackValue.MapEntry(.string("ts"), .float64(ts)), .init(.string("events"), list)]
            if let rank { entries.append(.init(.string("data_parallel_rank"), rank)) }
            return .map(entries)
        }
    }
}

extension KVEvent {
    func messagePack(_ layout: KVEventWireFormat.Layout) -> MessagePackValue {
        let tag = MessagePackValue.string(typeName)
        let fields: [(String, MessagePackValue?)]
        switch self {
        case .blockStored(let e): fields = e.wireFields
        case .blockRemoved(let e): fields = e.wireFields
        case .allBlocksCleared: fields = []
        }
        switch layout {
        case .positional:
            let last = fields.lastIndex { $0.1 != nil } ?? -1
            return .array([tag] + fields.prefix(last + 1).map { $0.1 ?? .nil })
        case .named:
            return .map([.init(.string("type"), tag)] + fields.compactMap { name, v in v.map { .init(.string(name), $0) } })
        }
    }
}

extension BlockStored {
    /// Fields in vLLM's order; `nil` marks a defaulted field that msgspec leaves out. The
    /// first seven have no default, so they are written even when they hold `nil`.
    var wireFields: [(String, MessagePackValue?)] {
        let n = Self.fieldNames
        return [
            (n[0], .array(blockHashes.map(\.messagePack))),
            (n[1], parentBlockHash?.messagePack ?? .nil),
            (n[2], .array(tokenIDs.map { .unsigned(UInt64($0)) })),
            (n[3], .int(blockSize)),
            (n[4], loraID.map { .int($0) } ?? .nil),
            (n[5], medium.map { .string($0) } ?? .nil),
            (n[6], loraName.map { .string($0) } ?? .nil),
            (n[7], extraKeys.map { .array($0.map { $0.map { .array($0) } ?? .nil }) }),
            (n[8], groupIdx.map { .int($0) }),
            (n[9], kvCacheSpecKind.map { .string($0) }),
            (n[10], kvCacheSpecSlidingWindow.map { .int($0) }),
        ]
    }
}

extension BlockRemoved {
    var wireFields: [(String, MessagePackValue?)] {
        [
            ("block_hashes", .array(blockHashes.map(\.messagePack))),
            ("medium", medium.map { .string($0) } ?? .nil),
            ("group_idx", groupIdx.map { .int($0) }),
        ]
    }
}
