import Testing
@testable import KVRouteEngineSim

/// Client-sized figures reach the engine unchecked by the HTTP layer's arithmetic; the engine
/// rejects what cannot fit without overflowing, and its runner keeps run-time knobs finite.
@Suite("Engine limits")
struct EngineLimitsTests {
    @Test("max_tokens near Int.max is too large for the context, not an overflow", arguments: [Int.max, Int.max - 1, Int.max - 8191, Int.max / 2 + 1])
    func hugeMaxTokens(_ maxTokens: Int) throws {
        var e = try testEngine()
        let error = #expect(throws: EngineError.self) { try e.add(EngineRequest(promptTokens: tokens(10), maxTokens: maxTokens), at: 0) }
        #expect(error?.code == .requestTooLarge)
        #expect(error?.message.contains("\(UInt64(maxTokens) + 10) tokens") == true, "\(error?.message ?? "")")
        #expect(!e.hasWork)
        // The engine still serves.
        let done = runSequentially(&e, [EngineRequest(promptTokens: tokens(10), maxTokens: 2)])
        #expect(done.first?.completionTokens == 2)
    }

    @Test("a request exactly filling the context is admitted; one token more is not")
    func contextEdge() throws {
        var e = try testEngine(blocks: 1024)
        _ = try e.add(EngineRequest(promptTokens: tokens(10), maxTokens: 8192 - 10), at: 0)
        #expect(throws: EngineError.self) { try e.add(EngineRequest(promptTokens: tokens(10), maxTokens: 8192 - 9), at: 0) }
    }

    @Test("slowdown stays finite and bounded", arguments: [Double.infinity, .nan, -1, 1e300])
    func slowdownBounded(_ factor: Double) throws {
        let runner = try EngineRunner(configuration: EngineConfiguration(numGPUBlocks: 64, maxModelLen: 4096), timeScale: 0)
        runner.setSlowdown(factor)
        let applied = runner.slowdown
        #expect(applied.isFinite && applied >= 0 && applied <= EngineRunner.maxSlowdown)
    }
}
