// swift-tools-version:6.1
import PackageDescription

// Benchmarks of kvroute: decision time, the prefix index's memory per (endpoint, block),
// and the engine model in virtual time. Run with `swift package benchmark` here.
let package = Package(
    name: "kvroute-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "kvroute", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // glibc's allocator statistics (mallinfo2), which the Glibc module does not export.
        .target(name: "MallocInfo", path: "Benchmarks/MallocInfo"),
        .executableTarget(
            name: "KVRouteBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "KVRouteCore", package: "kvroute"),
                .product(name: "KVRouteEngineSim", package: "kvroute"),
                "MallocInfo",
            ],
            path: "Benchmarks/KVRouteBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
