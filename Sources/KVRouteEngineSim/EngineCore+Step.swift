import KVRouteKVEvents

extension EngineCore {
    /// Runs one scheduler iteration at `now` and applies its effects as of the step's end.
    /// An idle engine returns a zero-length step with no outputs.
    public mutating func step(now: Double) -> StepResult {
        var budget = configuration.maxNumBatchedTokens
        var scheduled: [(EngineRequestID, Int)] = []
        var preempted = 0

        // 1. Running requests, oldest first; preempt the newest when blocks run out.
        var index = 0
        while index < running.count && budget > 0 {
            let id = running[index]
            let seq = sequences[id]!
            let numNew = min(seq.tokens.count - seq.numComputed, budget)
            var canSchedule = false
            while true {
                if allocateSlots(id, numNew: numNew, computed: []) {
                    canSchedule = true
                    break
                }
                let victim = running.removeLast()
                preempt(victim)
                preempted += 1
                if victim == id { break }
            }
            guard canSchedule else { break }
            scheduled.append((id, numNew))
            budget -= numNew
            index += 1
        }

        // 2. Waiting requests, in order, only when nothing was preempted this step.
        if preempted == 0 {
            while let id = waiting.first, budget > 0, running.count < configuration.maxNumSeqs {
                var seq = sequences[id]!
                var computed: [Int32] = []
                if seq.numComputed == 0 && configuration.enablePrefixCaching {
                    let cap = (seq.tokens.count - 1) / configuration.blockSize
                    computed = pool.lookup(seq.digests.prefix(cap).lazy.map(\.low64)[...])
                }
                let numComputed = computed.count * configuration.blockSize
                // Older vLLM counts every lookup, including one that is not admitted this step.
                if seq.numComputed == 0 && configuration.enablePrefixCaching && configuration.prefixCacheCounting == .everyLookup {
                    recordPrefixLookup(queries: seq.tokens.count, hits: numComputed)
                }
                var numNew = seq.tokens.count - numComputed
                if !configuration.enableChunkedPrefill && numNew > budget { break }
                numNew = min(numNew, budget)
                // Free blocks that the hit itself pulls off the free queue are not available.
                let needed = blocksNeeded(totalTokens: numComputed + numNew, have: computed.count)
                guard needed <= pool.numFreeBlocks - pool.countFree(computed) else { break }
                pool.touch(computed)
                seq.blocks = computed
                seq.registeredBlocks = computed.count
                seq.numComputed = numComputed
                if !seq.admitted {
                    seq.admitted = true
                    seq.cachedTokens = numComputed
                    seq.firstScheduled = now
                    // vLLM 0.32 counts a request once, on admission (a readmission after
                    // preemption is not counted again); no lookup, no count.
                    if configuration.enablePrefixCaching && configuration.prefixCacheCounting == .perRequest {
                        recordPrefixLookup(queries: seq.promptLength, hits: numComputed)
                    }
                    stats.promptTokens += seq.promptLength
                    if metrics != nil {
                        pendingMetrics.promptTokens += seq.promptLength
                        pendingMetrics.queueTimes.append(now - seq.arrival)
                    }
                }
                sequences[id] = seq
                let ok = allocateSlots(id, numNew: numNew, computed: computed)
                precondition(ok, "allocation after a successful capacity check")
                waiting.removeFirst()
                running.append(id)
                scheduled.append((id, numNew))
                budget -= numNew
            }
        }

        // 3. The forward pass.
        var prefillTokens = 0
        var decodes = 0
        for (id, n) in scheduled {
            if sequences[id]!.isDecoding { decodes += 1 } else { prefillTokens += n }
        }
        var duration = 0.0
        if !scheduled.isEmpty {
            let l = configuration.latency
            duration = l.stepDuration(prefillTokens: prefillTokens, decodingSequences: decodes)
            if l.jitter > 0 { duration *= 1 + l.jitter * (2 * rng.unit() - 1) }
            duration *= slowdown
            stats.steps += 1
            stats.busyTime += duration
        }
        let end = now + duration

        // 4. Outputs at the step's end.
        var outputs: [StepOutput] = []
        outputs.reserveCapacity(scheduled.count)
        var finishedIDs: [EngineRequestID] = []
        for (id, n) in scheduled {
            var seq = sequences[id]!
            seq.numComputed += n
            var out = StepOutput(id: id, token: nil, isFirstToken: false, finished: nil)
            if seq.numComputed >= seq.tokens.count {
                let endsHere = endsOnEOS(seq)
                let token = endsHere ? configuration.endOfSequenceToken : nextToken(of: seq)
                let first = seq.firstTokenTime == nil
                if first {
                    seq.firstTokenTime = end
                    if metrics != nil { pendingMetrics.firstTokens.append((end - seq.arrival, end - (seq.firstScheduled ?? end))) }
                } else if let last = seq.lastTokenTime, metrics != nil {
                    pendingMetrics.interTokens.append(end - last)
                }
                seq.lastTokenTime = end
                seq.tokens.append(token)
                stats.generationTokens += 1
                if metrics != nil { pendingMetrics.generationTokens += 1 }
                out.token = token
                out.isFirstToken = first
                if endsHere || seq.outputCount >= seq.maxTokens {
                    let done = FinishedRequest(
                        id: id, promptTokens: seq.promptLength, cachedTokens: seq.cachedTokens,
                        completionTokens: seq.outputCount, reason: endsHere ? .stop : .length, arrival: seq.arrival,
                        firstTokenTime: seq.firstTokenTime ?? end, finishTime: end, preemptions: seq.preemptions)
                    out.finished = done
                    finishedIDs.append(id)
                    stats.finishedRequests += 1
                    if metrics != nil { pendingMetrics.finished.append((done, end - (seq.firstTokenTime ?? end))) }
                }
            }
            sequences[id] = seq
            outputs.append(out)
        }
        for id in finishedIDs {
            let seq = sequences.removeValue(forKey: id)!
            running.removeAll { $0 == id }
            pool.free(seq.blocks)
        }
        if preempted > 0 && metrics != nil { pendingMetrics.preemptions += preempted }
        if !defersMetrics { publishMetrics() }
        return StepResult(start: now, duration: duration, outputs: outputs, prefillTokens: prefillTokens,
                          decodingSequences: decodes, preemptions: preempted)
    }

    private func blocksNeeded(totalTokens: Int, have: Int) -> Int {
        max(0, (totalTokens + configuration.blockSize - 1) / configuration.blockSize - have)
    }

    /// Gives a request the blocks its next `numNew` tokens need and registers every block
    /// that those tokens fill. Returns false when the pool cannot supply them.
    private mutating func allocateSlots(_ id: EngineRequestID, numNew: Int, computed: [Int32]) -> Bool {
        var seq = sequences[id]!
        let total = seq.numComputed + numNew
        let needed = blocksNeeded(totalTokens: total, have: seq.blocks.count)
        let events = configuration.recordKVEvents
        if needed > 0 {
            var evicted: [(block: Int32, hash: UInt64)] = []
            guard let fresh = events ? pool.allocate(needed, onEvict: { evicted.append(($0, $1)) }) : pool.allocate(needed) else { return false }
            seq.blocks.append(contentsOf: fresh)
            // vLLM announces each eviction on its own, as the block is reused.
            for e in evicted { kvEvents.append(.blockRemoved(BlockRemoved(blockHashes: [externalHash(e.block, e.hash)], medium: "GPU"))) }
        }
        if configuration.enablePrefixCaching {
            let full = min(total / configuration.blockSize, seq.blocks.count)
            if full > seq.registeredBlocks {
                hasher.extend(&seq.digests, tokens: seq.tokens, loraName: seq.lora?.name, cacheSalt: seq.cacheSalt)
                let first = seq.registeredBlocks
                var b = first
                while b < full && b < seq.digests.count {
                    pool.register(seq.blocks[b], hash: seq.digests[b].low64)
                    if events && configuration.kvEventHashBytes { digestOfBlock[seq.blocks[b]] = seq.digests[b] }
                    b += 1
                }
                seq.registeredBlocks = b
                if events && b > first { kvEvents.append(.blockStored(stored(seq, blocks: first..<b))) }
            }
        }
        sequences[id] = seq
        return true
    }

    /// The hash of a block as events name it: the low 64 bits, or the digest when asked for.
    private mutating func externalHash(_ block: Int32, _ low64: UInt64) -> ExternalBlockHash {
        if configuration.kvEventHashBytes, let d = digestOfBlock.removeValue(forKey: block) { return .bytes(d.bytes) }
        return .unsigned(low64)
    }

    /// vLLM's `BlockStored` for the blocks of one request registered together.
    private func stored(_ seq: Sequence, blocks: Range<Int>) -> BlockStored {
        let size = configuration.blockSize
        let bytes = configuration.kvEventHashBytes
        func name(_ d: BlockDigest) -> ExternalBlockHash { bytes ? .bytes(d.bytes) : d.external }
        let keys: [[MessagePackValue]?] = blocks.map { i in
            VLLMBlockHasher.extraKeys(blockIndex: i, loraName: seq.lora?.name, cacheSalt: seq.cacheSalt)?.map { k in
                if case .string(let s) = k { .string(s) } else { .nil }
            }
        }
        return BlockStored(
            blockHashes: blocks.map { name(seq.digests[$0]) },
            parentBlockHash: blocks.lowerBound > 0 ? name(seq.digests[blocks.lowerBound - 1]) : nil,
            tokenIDs: Array(seq.tokens[(blocks.lowerBound * size)..<(blocks.upperBound * size)]),
            blockSize: size, loraID: seq.lora?.id, medium: "GPU", loraName: seq.lora?.name,
            extraKeys: keys, groupIdx: 0, kvCacheSpecKind: "full_attention")
    }

    /// Puts a running request back at the head of the waiting queue, freeing its blocks; it
    /// recomputes prompt and output so far when readmitted.
    mutating func preempt(_ id: EngineRequestID) {
        var seq = sequences[id]!
        pool.free(seq.blocks)
        seq.blocks = []
        seq.registeredBlocks = 0
        seq.numComputed = 0
        seq.preemptions += 1
        sequences[id] = seq
        waiting.prepend(id)
        stats.preemptions += 1
    }

    /// Adds one prefix-cache lookup to the counters.
    private mutating func recordPrefixLookup(queries: Int, hits: Int) {
        stats.prefixQueries += queries
        stats.prefixHits += hits
        if metrics != nil {
            pendingMetrics.prefixQueries += queries
            pendingMetrics.prefixHits += hits
        }
    }

    /// Whether the token sampled now is the end-of-sequence token: a seeded draw with
    /// ``EngineConfiguration/endOfSequenceProbability``, never for a forced answer, before
    /// `min_tokens` or with `ignore_eos`.
    private func endsOnEOS(_ seq: Sequence) -> Bool {
        let p = configuration.endOfSequenceProbability
        guard p > 0, !seq.ignoreEOS, seq.forcedOutput == nil, seq.outputCount >= seq.minTokens else { return false }
        let r = SplitMix64.mix(seq.outputSeed ^ configuration.seed ^ 0x454F_5345_4F53, UInt64(seq.outputCount))
        return Double(r >> 11) * 0x1p-53 < p
    }

    /// The deterministic next token: a function of the prompt and the position, so equal
    /// requests produce equal answers (as with temperature 0).
    private func nextToken(of seq: Sequence) -> UInt32 {
        let k = seq.outputCount
        if let forced = seq.forcedOutput, k < forced.count { return forced[k] }
        let r = SplitMix64.mix(seq.outputSeed ^ configuration.seed, UInt64(k))
        let vocabulary = configuration.outputTokens.isEmpty ? OutputVocabulary.tokens : configuration.outputTokens
        return vocabulary[Int(r % UInt64(vocabulary.count))]
    }
}
