import KVRouteCore
import KVRouteEngineSim
import KVRouteKVEvents

/// The `precise-prefix-cache-scorer`'s view of a ``PreciseIndexStore``: the prompt rendered
/// and tokenized as the engines do (their chat template and tokenizer), hashed with vLLM's
/// sha256_cbor, and matched against the blocks each engine reported. The index names engines
/// by their `host:port` address (``PreciseIndexService/Engine/name``). LoRA requests are
/// matched under the base model without the adapter key (not yet matched per adapter).
public struct PreciseIndexLookup: PreciseBlockLookup {
    public let store: PreciseIndexStore
    public let template: Llama3ChatTemplate
    /// The engines' served model (the index's scope).
    public let model: String

    public init(store: PreciseIndexStore, template: Llama3ChatTemplate, model: String) {
        self.store = store
        self.template = template
        self.model = model
    }

    /// The prompt's block hashes (low 64 bits), as an engine with this block size and seed
    /// computes them; also what the picker tells the store it routed (``PreciseIndexStore/routed(blockHashes:engine:)``).
    public func blockHashes(_ request: InferenceRequest, blockSize: Int, hashSeed: String, maxBlocks: Int) -> [UInt64] {
        let tokens: [UInt32]
        switch request.prompt {
        case .text(let s): tokens = template.renderCompletion(s)
        case .messages(let m): tokens = template.render(m.map { ChatTurn(role: $0.role, content: $0.content) })
        case .none: return []
        }
        let usable = Array(tokens.prefix(maxBlocks * blockSize))
        return VLLMBlockHasher(blockSize: blockSize, hashSeed: hashSeed).blockHashes(tokens: usable).map(\.low64)
    }

    public func match(_ request: InferenceRequest, blockSize: Int, hashSeed: String, maxBlocks: Int) -> PreciseBlockMatch {
        let hashes = blockHashes(request, blockSize: blockSize, hashSeed: hashSeed, maxBlocks: maxBlocks)
        guard !hashes.isEmpty else { return PreciseBlockMatch(total: 0, held: [:]) }
        var held: [EndpointAddress: Int] = [:]
        for (engine, n) in store.matchedBlocks(hashes, model: model) {
            if let address = EndpointAddress(engine) { held[address] = n }
        }
        return PreciseBlockMatch(total: hashes.count, held: held, blockHashes: hashes)
    }

    /// Feeds the store's ``HashAgreement`` for the engine (named by its address).
    public func routed(blockHashes: [UInt64], to endpoint: EndpointAddress) {
        store.routed(blockHashes: blockHashes, engine: endpoint.description)
    }
}
