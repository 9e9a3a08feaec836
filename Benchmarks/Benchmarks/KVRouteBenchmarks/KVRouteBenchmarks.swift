import Benchmark

let benchmarks: @Sendable () -> Void = {
    engineModelBenchmarks()
    decisionBenchmarks()
    prefixIndexMemoryBenchmarks()
    requestParsingBenchmarks()
}
