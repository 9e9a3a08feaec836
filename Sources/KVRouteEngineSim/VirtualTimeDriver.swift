/// Pushes a fixed list of timed requests through one engine in virtual time — no clocks,
/// no sleeping — and returns every request's outcome. The benchmark harness drives many
/// engines with its own event loop; this is the single-engine form.
public enum VirtualTimeDriver {
    public struct Arrival: Sendable {
        public var time: Double
        public var request: EngineRequest
        public init(time: Double, request: EngineRequest) {
            self.time = time
            self.request = request
        }
    }

    /// Runs until every request finished. Requests the engine rejects are skipped.
    public static func run(_ engine: inout EngineCore, arrivals: [Arrival]) -> [FinishedRequest] {
        let ordered = arrivals.sorted { $0.time < $1.time }
        var finished: [FinishedRequest] = []
        finished.reserveCapacity(ordered.count)
        var now = 0.0
        var next = 0
        while next < ordered.count || engine.hasWork {
            while next < ordered.count && ordered[next].time <= now {
                _ = try? engine.add(ordered[next].request, at: ordered[next].time)
                next += 1
            }
            guard engine.hasWork else {
                now = ordered[next].time
                continue
            }
            let step = engine.step(now: now)
            for out in step.outputs { if let f = out.finished { finished.append(f) } }
            if step.outputs.isEmpty && step.duration == 0 {
                // Nothing could be scheduled: only a later arrival changes that.
                guard next < ordered.count else { break }
                now = ordered[next].time
            } else {
                now = step.end
            }
        }
        return finished
    }
}
