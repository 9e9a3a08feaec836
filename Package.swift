// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "kvroute",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "kvroute", targets: ["kvroute"]),
        .library(name: "KVRouteCore", targets: ["KVRouteCore"]),
        .library(name: "KVRouteEngineSim", targets: ["KVRouteEngineSim"]),
        .library(name: "KVRouteKVEvents", targets: ["KVRouteKVEvents"]),
        .library(name: "KVRouteSimServer", targets: ["KVRouteSimServer"]),
        .library(name: "KVRouteDataLayer", targets: ["KVRouteDataLayer"]),
        .library(name: "KVRouteRouting", targets: ["KVRouteRouting"]),
        .library(name: "KVRouteGateway", targets: ["KVRouteGateway"]),
        .library(name: "KVRouteValidate", targets: ["KVRouteValidate"]),
        .library(name: "KVRouteBench", targets: ["KVRouteBench"]),
        .library(name: "KVRouteSSE", targets: ["KVRouteSSE"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    ],
    targets: [
        // The decision core: pure values in, values out. No NIO, HTTP, gRPC or logging.
        .target(
            name: "KVRouteCore",
            dependencies: [
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        // The vLLM-compatible engine model: tokenizer, chat template, block pool,
        // scheduler, latency model and metrics. Runs in virtual time or real time.
        .target(
            name: "KVRouteEngineSim",
            dependencies: [
                "KVRouteKVEvents",
                .product(name: "Collections", package: "swift-collections"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Percentiles over an HdrHistogram: the bench's, the validator's and the dashboard's.
        .target(
            name: "KVRouteStats",
            dependencies: [
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: swiftSettings
        ),
        // The one server-sent-events parser: bytes in, events out, whatever the chunking.
        .target(
            name: "KVRouteSSE",
            swiftSettings: swiftSettings
        ),
        // vLLM KV events: MessagePack, the event model, sha256_cbor block hashes, and the ZMQ
        // transport (libzmq loaded at run time, so nothing else needs it installed).
        .target(
            name: "KVRouteKVEvents",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // The engine model behind vLLM's OpenAI-compatible HTTP API.
        .target(
            name: "KVRouteSimServer",
            dependencies: [
                "KVRouteEngineSim",
                "KVRouteKVEvents",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Endpoint discovery, metrics scraping and health probing as Services.
        .target(
            name: "KVRouteDataLayer",
            dependencies: [
                "KVRouteCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // What every front door shares between its protocol and the routing core: one
        // route/lease call with its bookkeeping, session keys, the Endpoint Picker metrics,
        // OpenAI error bodies, listening errors. Adapters depend on it, never on each other.
        .target(
            name: "KVRouteRouting",
            dependencies: [
                "KVRouteCore",
                "KVRouteDataLayer",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        // The OpenAI-compatible HTTP front door over the routing core.
        .target(
            name: "KVRouteGateway",
            dependencies: [
                "KVRouteCore",
                "KVRouteDataLayer",
                "KVRouteRouting",
                "KVRouteStats",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The cache-hit validator against any OpenAI gateway in front of vLLM engines.
        .target(
            name: "KVRouteValidate",
            dependencies: [
                "KVRouteDataLayer", "KVRouteSSE", "KVRouteStats", "KVRoutePrecise",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Our own minimal ext_proc and health protos, with the generated Swift committed.
        .target(
            name: "KVRouteProto",
            dependencies: [
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            ]
        ),
        // The Envoy ext_proc endpoint picker over the same core and data layer.
        .target(
            name: "KVRouteExtProc",
            dependencies: [
                "KVRouteCore", "KVRouteDataLayer", "KVRouteRouting", "KVRouteProto",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The whole system on one machine: engines, gateways, validation.
        .target(
            name: "KVRouteDemo",
            dependencies: [
                "KVRouteCore", "KVRouteEngineSim", "KVRouteSimServer", "KVRouteDataLayer", "KVRouteGateway", "KVRouteValidate",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Workloads, trace replay and policy comparison in virtual time.
        .target(
            name: "KVRouteBench",
            dependencies: [
                "KVRouteCore", "KVRouteEngineSim", "KVRouteDataLayer", "KVRouteRouting", "KVRouteSSE", "KVRouteStats",
                "KVRouteKVEvents", "KVRoutePrecise",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "kvroute",
            dependencies: [
                "KVRouteCore",
                "KVRouteEngineSim",
                "KVRouteSimServer",
                "KVRouteDataLayer",
                "KVRouteRouting",
                "KVRouteGateway",
                "KVRouteValidate",
                "KVRouteBench",
                "KVRouteDemo",
                "KVRouteExtProc",
                "KVRoutePrecise",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Harnesses shared by the test targets: in-process clusters, HTTP helpers, real peers.
        .target(
            name: "KVRouteTestSupport",
            dependencies: [
                "KVRouteCore",
                "KVRouteEngineSim",
                "KVRouteSSE",
                "KVRouteKVEvents",
                "KVRouteSimServer",
                "KVRouteExtProc",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/KVRouteTestSupport",
            swiftSettings: swiftSettings
        ),
        // The route/lease bookkeeping in-process, and the module graph: adapters never import
        // each other, the core reads no files and no clock.
        .testTarget(
            name: "KVRouteRoutingTests",
            dependencies: ["KVRouteRouting", "KVRouteCore", "KVRouteDataLayer"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KVRouteSSETests",
            dependencies: ["KVRouteSSE"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KVRouteStatsTests",
            dependencies: ["KVRouteStats"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KVRouteCoreTests",
            dependencies: ["KVRouteCore", "KVRouteTestSupport"],
            swiftSettings: swiftSettings
        ),
        // Precise prefix-cache state: which engine holds which KV block, from the engines'
        // own KV events (an index fed by one ZMQ subscriber per engine).
        .target(
            name: "KVRoutePrecise",
            dependencies: [
                "KVRouteCore", "KVRouteEngineSim", "KVRouteKVEvents",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KVRoutePreciseTests",
            dependencies: [
                "KVRoutePrecise", "KVRouteCore", "KVRouteKVEvents", "KVRouteEngineSim", "KVRouteSimServer", "KVRouteDataLayer", "KVRouteTestSupport",
                "KVRouteRouting", "KVRouteExtProc",
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KVRouteKVEventsTests",
            dependencies: ["KVRouteKVEvents", "KVRouteEngineSim", "KVRouteTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KVRouteEngineSimTests",
            dependencies: ["KVRouteEngineSim", "KVRouteKVEvents", "KVRouteTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KVRouteSimServerTests",
            dependencies: [
                "KVRouteSimServer",
                "KVRouteEngineSim",
                "KVRouteKVEvents",
                "KVRouteTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KVRouteValidateTests",
            dependencies: [
                "KVRouteValidate",
                "KVRouteSimServer",
                "KVRouteEngineSim",
                "KVRouteTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KVRouteBenchTests",
            dependencies: [
                "KVRouteBench", "KVRouteCore", "KVRouteEngineSim", "KVRouteGateway", "KVRouteTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KVRouteExtProcTests",
            dependencies: [
                "KVRouteExtProc", "KVRouteProto", "KVRouteCore", "KVRouteGateway", "KVRouteRouting", "KVRouteTestSupport",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            ],
            swiftSettings: swiftSettings
        ),
        // deploy/ checked offline: kustomize, schemas, promtool, a real Prometheus against
        // sim engines and a picker, and the picker's flags as the manifests use them.
        .testTarget(
            name: "KVRouteDeployTests",
            dependencies: [
                "KVRouteExtProc", "KVRouteSimServer", "KVRouteEngineSim", "KVRouteCore", "KVRouteTestSupport", "KVRouteProto",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            ],
            swiftSettings: swiftSettings
        ),
        // Real kvroute processes, Envoy and sim engines under injected faults, killed and
        // restarted, with clients walking away: every request answered, nothing left behind.
        .testTarget(
            name: "KVRouteChaosTests",
            dependencies: [
                "KVRouteTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: swiftSettings
        ),
        // The built kvroute binary as a real process: ports it cannot take, signals, output to pipes.
        .testTarget(
            name: "KVRouteCLITests",
            dependencies: ["KVRouteTestSupport"],
            swiftSettings: swiftSettings
        ),
        // The data layer alone: metrics pages, membership, pacing (no front door).
        .testTarget(
            name: "KVRouteDataLayerTests",
            dependencies: [
                "KVRouteDataLayer",
                "KVRouteCore",
                "KVRouteTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KVRouteGatewayTests",
            dependencies: [
                "KVRouteGateway",
                "KVRouteDataLayer",
                "KVRouteRouting",
                "KVRouteCore",
                "KVRouteSimServer",
                "KVRouteEngineSim",
                "KVRouteTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
