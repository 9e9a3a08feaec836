/// `max-score-picker`: the highest total wins, ties broken at random. Returns
/// `maxNumOfEndpoints` endpoints in score order; kvroute then appends the remaining
/// candidates in score order as retry fallbacks (see ``Scheduler``).
public struct MaxScorePicker: EndpointPicker {
    public let type = "max-score-picker"
    public let name: String
    public let maxNumOfEndpoints: Int
    public init(name: String, maxNumOfEndpoints: Int = 1) {
        self.name = name
        self.maxNumOfEndpoints = max(1, maxNumOfEndpoints)
    }

    static func make(name: String, parameters p: inout PluginParameters) throws -> MaxScorePicker {
        MaxScorePicker(name: name, maxNumOfEndpoints: try p.int("maxNumOfEndpoints", default: 1, min: 1))
    }

    public func pick(_ scored: [(endpoint: EndpointSnapshot, score: Double)], context: inout SchedulingContext, ledger: RoutingLedger,
                     using rng: inout SeededGenerator) -> [EndpointAddress] {
        // Shuffled first so that ties go to the earlier in the shuffled order: at random. Only
        // indices are shuffled and ranked, so no snapshot is copied.
        var order = Array(scored.indices)
        order.shuffle(using: &rng)
        if maxNumOfEndpoints == 1 {
            guard var best = order.first else { return [] }
            for i in order.dropFirst() where scored[i].score > scored[best].score { best = i }
            return [scored[best].endpoint.address]
        }
        let ranked = order.indices.sorted { a, b in
            let (x, y) = (scored[order[a]].score, scored[order[b]].score)
            return x != y ? x > y : a < b
        }
        return ranked.prefix(maxNumOfEndpoints).map { scored[order[$0]].endpoint.address }
    }
}

/// `random-picker`: uniformly random.
public struct RandomPicker: EndpointPicker {
    public let type = "random-picker"
    public let name: String
    public let maxNumOfEndpoints: Int
    public init(name: String, maxNumOfEndpoints: Int = 1) {
        self.name = name
        self.maxNumOfEndpoints = max(1, maxNumOfEndpoints)
    }

    static func make(name: String, parameters p: inout PluginParameters) throws -> RandomPicker {
        RandomPicker(name: name, maxNumOfEndpoints: try p.int("maxNumOfEndpoints", default: 1, min: 1))
    }

    public func pick(_ scored: [(endpoint: EndpointSnapshot, score: Double)], context: inout SchedulingContext, ledger: RoutingLedger,
                     using rng: inout SeededGenerator) -> [EndpointAddress] {
        Array(scored.map(\.endpoint.address).shuffled(using: &rng).prefix(maxNumOfEndpoints))
    }
}

/// `weighted-random-picker`: random with probability proportional to the total score
/// (uniform when every score is 0).
public struct WeightedRandomPicker: EndpointPicker {
    public let type = "weighted-random-picker"
    public let name: String
    public let maxNumOfEndpoints: Int
    public init(name: String, maxNumOfEndpoints: Int = 1) {
        self.name = name
        self.maxNumOfEndpoints = max(1, maxNumOfEndpoints)
    }

    static func make(name: String, parameters p: inout PluginParameters) throws -> WeightedRandomPicker {
        WeightedRandomPicker(name: name, maxNumOfEndpoints: try p.int("maxNumOfEndpoints", default: 1, min: 1))
    }

    public func pick(_ scored: [(endpoint: EndpointSnapshot, score: Double)], context: inout SchedulingContext, ledger: RoutingLedger,
                     using rng: inout SeededGenerator) -> [EndpointAddress] {
        var pool = scored
        var out: [EndpointAddress] = []
        while !pool.isEmpty && out.count < maxNumOfEndpoints {
            let total = pool.reduce(0) { $0 + max(0, $1.score) }
            var r = Double(rng.next() >> 11) / Double(1 << 53) * total
            var chosen = pool.count - 1
            if total > 0 {
                for (i, p) in pool.enumerated() {
                    r -= max(0, p.score)
                    if r < 0 { chosen = i; break }
                }
            } else {
                chosen = Int(rng.next() % UInt64(pool.count))
            }
            out.append(pool.remove(at: chosen).endpoint.address)
        }
        return out
    }
}

extension EndpointPicker {
    /// Picks for a request that needs no context or ledger (tables of cases).
    func pick(_ scored: [(endpoint: EndpointSnapshot, score: Double)], using rng: inout SeededGenerator) -> [EndpointAddress] {
        var context = SchedulingContext(request: InferenceRequest(requestID: "", model: "", prompt: .none))
        return pick(scored, context: &context, ledger: RoutingLedger(), using: &rng)
    }
}
