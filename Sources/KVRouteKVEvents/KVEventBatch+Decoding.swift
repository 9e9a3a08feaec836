extension KVEventBatch {
    /// Decodes a payload in any layout vLLM has used (see ``KVEventWireFormat``). Unknown
    /// fields are ignored, events of unknown types are skipped and counted in
    /// ``skippedEvents``; anything else out of shape is a ``KVEventsError``.
    public init(decoding payload: [UInt8], decoder: MessagePackDecoder = MessagePackDecoder()) throws(KVEventsError) {
        try self.init(decoder.decode(payload))
    }

    /// Reads a batch from an already decoded MessagePack value.
    public init(_ value: MessagePackValue) throws(KVEventsError) {
        let ts: MessagePackValue?, events: MessagePackValue?, rank: MessagePackValue?
        switch value {
        case .array(let items):
            guard items.count >= 2 else { throw .event("a positional batch needs [ts, events, …], got \(items.count) items") }
            ts = items[0]
            events = items[1]
            rank = items.count > 2 ? items[2] : nil
        case .map:
            ts = value["ts"]
            events = value["events"]
            rank = value["data_parallel_rank"]
        default:
            throw .event("a batch must be an array or a map, not \(value.kindName)")
        }
        guard let ts, let seconds = ts.doubleValue else { throw .event("batch ts must be a number") }
        guard let list = events?.arrayValue else { throw .event("batch events must be an array") }
        var decoded: [KVEvent] = []
        decoded.reserveCapacity(list.count)
        var skipped = 0
        for (i, item) in list.enumerated() {
            if let event = try KVEvent.decode(item, index: i) { decoded.append(event) } else { skipped += 1 }
        }
        self.init(ts: seconds, events: decoded, dataParallelRank: try Field.optionalInt(rank, "data_parallel_rank"), skippedEvents: skipped)
    }
}

extension KVEvent {
    /// An event in either layout, or `nil` for a well-formed event of an unknown type.
    static func decode(_ value: MessagePackValue, index: Int) throws(KVEventsError) -> KVEvent? {
        let where_ = "events[\(index)]"
        switch value {
        case .array(let items):
            guard let tag = items.first?.stringValue else { throw .event("\(where_): a positional event starts with its type name") }
            let fields = Array(items.dropFirst())
            func at(_ i: Int) -> MessagePackValue? { i < fields.count ? fields[i] : nil }
            switch tag {
            case "BlockStored":
                guard fields.count >= 4 else { throw .event("\(where_): BlockStored needs at least 4 fields, got \(fields.count)") }
                return .blockStored(try BlockStored(where_, at))
            case "BlockRemoved":
                guard fields.count >= 1 else { throw .event("\(where_): BlockRemoved needs its block_hashes") }
                return .blockRemoved(try BlockRemoved(where_, at))
            case "AllBlocksCleared": return .allBlocksCleared
            default: return nil
            }
        case .map:
            guard let tag = value["type"]?.stringValue else { throw .event("\(where_): an event map needs a string `type`") }
            switch tag {
            case "BlockStored":
                return .blockStored(try BlockStored(where_) { BlockStored.fieldNames.indices.contains($0) ? value[BlockStored.fieldNames[$0]] : nil })
            case "BlockRemoved":
                return .blockRemoved(try BlockRemoved(where_) { BlockRemoved.fieldNames.indices.contains($0) ? value[BlockRemoved.fieldNames[$0]] : nil })
            case "AllBlocksCleared": return .allBlocksCleared
            default: return nil
            }
        default:
            throw .event("\(where_): an event must be an array or a map, not \(value.kindName)")
        }
    }
}

extension BlockStored {
    /// vLLM's field order; the positional layout follows it, the map layout names it.
    static let fieldNames = [
        "block_hashes", "parent_block_hash", "token_ids", "block_size", "lora_id", "medium", "lora_name",
        "extra_keys", "group_idx", "kv_cache_spec_kind", "kv_cache_spec_sliding_window",
    ]

    /// Reads the fields by position through `field` (the map layout looks names up).
    init(_ where_: String, _ field: (Int) -> MessagePackValue?) throws(KVEventsError) {
        let n = Self.fieldNames
        guard let hashes = field(0) else { throw .event("\(where_): BlockStored has no block_hashes") }
        blockHashes = try Field.hashes(hashes, "\(where_).block_hashes")
        parentBlockHash = try field(1).flatMap { v throws(KVEventsError) in v.isNil ? nil : try ExternalBlockHash(v, field: "\(where_).parent_block_hash") }
        guard let tokens = field(2)?.arrayValue else { throw .event("\(where_): BlockStored token_ids must be an array") }
        var ids: [UInt32] = []
        ids.reserveCapacity(tokens.count)
        for t in tokens {
            guard case .unsigned(let u) = t, let id = UInt32(exactly: u) else {
                throw .event("\(where_).token_ids: a token id must be an integer in 0...\(UInt32.max), not \(t)")
            }
            ids.append(id)
        }
        tokenIDs = ids
        guard let size = field(3)?.intValue, size > 0 else { throw .event("\(where_): BlockStored block_size must be a positive integer") }
        blockSize = size
        loraID = try Field.optionalInt(field(4), "\(where_).\(n[4])")
        medium = try Field.optionalString(field(5), "\(where_).\(n[5])")
        loraName = try Field.optionalString(field(6), "\(where_).\(n[6])")
        extraKeys = try Field.extraKeys(field(7), "\(where_).\(n[7])")
        groupIdx = try Field.optionalInt(field(8), "\(where_).\(n[8])")
        kvCacheSpecKind = try Field.optionalString(field(9), "\(where_).\(n[9])")
        kvCacheSpecSlidingWindow = try Field.optionalInt(field(10), "\(where_).\(n[10])")
    }
}

extension BlockRemoved {
    static let fieldNames = ["block_hashes", "medium", "group_idx"]

    init(_ where_: String, _ field: (Int) -> MessagePackValue?) throws(KVEventsError) {
        guard let hashes = field(0) else { throw .event("\(where_): BlockRemoved has no block_hashes") }
        blockHashes = try Field.hashes(hashes, "\(where_).block_hashes")
        medium = try Field.optionalString(field(1), "\(where_).medium")
        groupIdx = try Field.optionalInt(field(2), "\(where_).group_idx")
    }
}

/// Field readers with errors that name the field.
enum Field {
    static func hashes(_ v: MessagePackValue, _ name: String) throws(KVEventsError) -> [ExternalBlockHash] {
        guard let items = v.arrayValue else { throw .event("\(name) must be an array, not \(v.kindName)") }
        var out: [ExternalBlockHash] = []
        out.reserveCapacity(items.count)
        for item in items { out.append(try ExternalBlockHash(item, field: name)) }
        return out
    }

    static func optionalInt(_ v: MessagePackValue?, _ name: String) throws(KVEventsError) -> Int? {
        guard let v, !v.isNil else { return nil }
        guard let i = v.intValue else { throw .event("\(name) must be an integer or nil, not \(v.kindName)") }
        return i
    }

    static func optionalString(_ v: MessagePackValue?, _ name: String) throws(KVEventsError) -> String? {
        guard let v, !v.isNil else { return nil }
        guard let s = v.stringValue else { throw .event("\(name) must be a string or nil, not \(v.kindName)") }
        return s
    }

    static func extraKeys(_ v: MessagePackValue?, _ name: String) throws(KVEventsError) -> [[MessagePackValue]?]? {
        guard let v, !v.isNil else { return nil }
        guard let entries = v.arrayValue else { throw .event("\(name) must be an array or nil, not \(v.kindName)") }
        var out: [[MessagePackValue]?] = []
        out.reserveCapacity(entries.count)
        for (i, e) in entries.enumerated() {
            switch e {
            case .nil: out.append(nil)
            case .array(let keys): out.append(keys)
            default: throw .event("\(name)[\(i)] must be a tuple or nil, not \(e.kindName)")
            }
        }
        return out
    }
}
