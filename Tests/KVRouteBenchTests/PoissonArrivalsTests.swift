import Foundation
import Testing
@testable import KVRouteBench

/// The one arrival generator the open-loop workloads share gives the arrivals they always
/// had: a constant rate as exponential gaps, bursts by spending unit gaps through segments.
@Suite("Poisson arrivals")
struct PoissonArrivalsTests {
    @Test("a constant rate: exponential gaps of mean 1 / rate, from the workload's own draws", arguments: [1 as UInt64, 7, 99])
    func constant(_ seed: UInt64) {
        var a = Draw(seed: seed)
        var b = Draw(seed: seed)
        var arrivals = PoissonArrivals.constant(10)
        var t = 0.0
        for _ in 0..<500 {
            t += b.exponential(mean: 1 / 10)
            #expect(arrivals.next(using: &a) == t)
        }
    }

    @Test("bursts: the same times as spending each unit gap through the bursts and lulls by hand", arguments: [1 as UInt64, 4])
    func bursty(_ seed: UInt64) {
        let w = BurstyChatWorkload(requests: 2_000, qps: 10, seed: seed)
        var d = Draw(seed: seed)
        var t = 0.0
        var expected: [Double] = []
        while expected.count < w.requests {
            var need = d.exponential(mean: 1)
            while true {
                let inBurst = t.truncatingRemainder(dividingBy: w.period) < w.burstShare * w.period
                let end = (t / w.period).rounded(.down) * w.period + (inBurst ? w.burstShare * w.period : w.period)
                let r = w.rate(at: t)
                if r * (end - t) >= need {
                    t += need / r
                    break
                }
                need -= r * (end - t)
                t = end
            }
            expected.append(t)
        }
        #expect(w.arrivals() == expected)
    }

    @Test("a RAG workload's arrivals are the constant-rate generator's, interleaved with its retrieval draws")
    func rag() {
        let w = RAGWorkload(requests: 50, qps: 4, seed: 3)
        let times = w.initialRequests().compactMap(\.arrival)
        #expect(times.count == 50)
        #expect(zip(times, times.dropFirst()).allSatisfy { $0 < $1 })
        // Over many requests the mean gap is 1 / qps.
        let long = RAGWorkload(requests: 1_000, qps: 4, seed: 3).initialRequests().compactMap(\.arrival)
        #expect(long.count == 1_000)
        #expect(abs((long.last ?? 0) / Double(long.count) - 0.25) < 0.03)
    }
}
