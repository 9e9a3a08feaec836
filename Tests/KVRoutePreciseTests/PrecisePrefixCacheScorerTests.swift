import KVRouteCore
import KVRouteEngineSim
import KVRouteKVEvents
import KVRoutePrecise
import Testing

/// The `precise-prefix-cache-scorer` reading kvroute's event-driven index through the ledger.
@Suite("Precise prefix-cache scorer")
struct PrecisePrefixCacheScorerTests {
    static let model = "tiny-llama"
    static let a = EndpointAddress(host: "127.0.0.1", port: 8001)
    static let b = EndpointAddress(host: "127.0.0.1", port: 8002)

    static func snapshot(_ e: EndpointAddress) -> EndpointSnapshot {
        EndpointSnapshot(address: e, labels: [:], waitingRequests: 0, runningRequests: 0, kvCacheUsage: 0, healthy: true, metricsAge: 0)
    }

    @Test("llm-d's parameter names load; unknown keys are refused")
    func parameters() throws {
        let yaml = """
        apiVersion: inference.networking.x-k8s.io/v1alpha1
        kind: EndpointPickerConfig
        plugins:
        - type: precise-prefix-cache-scorer
          parameters:
            indexerConfig:
              tokenProcessorConfig:
                blockSize: 64
                hashSeed: "42"
              kvBlockIndexConfig:
                enableMetrics: true
            kvEventsConfig:
              zmqEndpoint: tcp://*:5557
              topicFilter: kv@
        - type: max-score-picker
        schedulingProfiles:
        - name: default
          plugins:
          - pluginRef: precise-prefix-cache-scorer
          - pluginRef: max-score-picker
        """
        _ = try EndpointPickerConfig.load(yaml: yaml)
        #expect(throws: (any Error).self) {
            _ = try EndpointPickerConfig.load(yaml: yaml.replacingOccurrences(of: "kvEventsConfig:", with: "kvEventsConfigs:"))
        }
    }

    @Test("scores are the engines' reported leading blocks over the prompt's blocks; 0 without a lookup")
    func scoresFromEvents() throws {
        let template = Llama3ChatTemplate(tokenizer: ApproximateTokenizer(), style: .compact)
        let store = PreciseIndexStore()
        let lookup = PreciseIndexLookup(store: store, template: template, model: Self.model)
        let scorer = PrecisePrefixCacheScorer(name: "precise", blockSize: 16, hashSeed: "0")
        let text = String(repeating: "All engines report what they cache. ", count: 20)
        let request = InferenceRequest(requestID: "r1", model: Self.model, apiKind: .completions, prompt: .text(text))
        let hashes = lookup.blockHashes(request, blockSize: 16, hashSeed: "0", maxBlocks: 256)
        try #require(hashes.count >= 8)
        // Engine a holds every block, engine b the first three.
        store.update { index in
            index.apply(KVEventBatch(ts: 0, events: [.blockStored(BlockStored(blockHashes: hashes.map { .unsigned($0) }, parentBlockHash: nil, tokenIDs: [], blockSize: 16))]),
                        engine: "\(Self.a)", model: Self.model)
            index.apply(KVEventBatch(ts: 0, events: [.blockStored(BlockStored(blockHashes: hashes.prefix(3).map { .unsigned($0) }, parentBlockHash: nil, tokenIDs: [], blockSize: 16))]),
                        engine: "\(Self.b)", model: Self.model)
        }
        var ledger = RoutingLedger()
        var context = SchedulingContext(request: request)
        let candidates = [Self.snapshot(Self.a), Self.snapshot(Self.b)]
        #expect(scorer.score(candidates, context: &context, ledger: ledger) == [0, 0])
        for spec in scorer.ledgerStates { ledger.install(spec) }
        ledger.update(PrecisePrefixCacheScorer.sourceKey) { $0.lookup = lookup }
        let scores = scorer.score(candidates, context: &context, ledger: ledger)
        #expect(scores == [1, 3 / Double(hashes.count)])
        #expect(context.matchedPrefixBlocks == [Self.a: hashes.count, Self.b: 3])
        // A different seed hashes differently: nothing matches.
        let other = PrecisePrefixCacheScorer(name: "precise", blockSize: 16, hashSeed: "1")
        #expect(other.score(candidates, context: &context, ledger: ledger) == [0, 0])
    }
}
