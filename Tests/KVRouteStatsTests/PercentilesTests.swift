import KVRouteStats
import Testing

@Suite("Percentiles over an HdrHistogram")
struct PercentilesTests {
    @Test("nearest rank, exact below 32.768 units", arguments: [(0.0, 1.0), (0.1, 1.0), (0.5, 5.0), (0.9, 9.0), (0.99, 10.0), (1.0, 10.0)])
    func nearestRank(_ p: Double, _ expected: Double) {
        #expect(Percentiles((1...10).reversed().map(Double.init)).value(at: p) == expected)
    }

    @Test("large values within one part in 10,000; nothing recorded is nil; bad values count as 0")
    func precision() {
        let values = (1...1000).map { Double($0) * 123.457 }
        let sorted = values.sorted()
        let h = Percentiles(values)
        for p in [0.5, 0.9, 0.99] {
            let exact = sorted[Int((p * Double(sorted.count)).rounded(.up)) - 1]
            let got = try! #require(h.value(at: p))
            #expect(abs(got - exact) / exact <= 1e-4, "p\(p): \(got) vs \(exact)")
        }
        #expect(Percentiles().value(at: 0.5) == nil)
        #expect(Percentiles([-3, .nan, .infinity]).count == 3)
        #expect(Percentiles([-3, .nan]).value(at: 1) == 0)
    }
}
