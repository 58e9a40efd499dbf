// swift-tools-version:6.1
import PackageDescription

// Layers, bottom up (docs/architecture.md draws them):
//   BallotCollections (hash tables and their memory: the one place with mmap and the
//   exclusivity opt-out) -> BallotDomain (pure rules and projections)
//   CLMDB -> BallotStore (the only LMDB user)
//   -> BallotFormat (record codec, Merkle hashing, the fast vote decoder, reading a ledger;
//      SHA-256 from COpenSSL, and CSHA256Batch for hashing many at a time)
//   -> BallotAudit (the one replay and verification engine)
//   -> BallotLedger (the writer) -> the daemon -> thin executables.
// ballot-replay and the report stand on format, domain, audit and store, not on the writer.
// BallotConfig reads data files (Foundation); the ledger and the auditor's path use
// FoundationEssentials at most, so that ballot-replay does not load Foundation and ICU (about
// 4 ms of every start).
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "BallotLedger",
    products: [
        .library(name: "BallotStore", targets: ["BallotStore"]),
        .library(name: "BallotDomain", targets: ["BallotDomain"]),
        .library(name: "BallotCollections", targets: ["BallotCollections"]),
        .library(name: "BallotFormat", targets: ["BallotFormat"]),
        .library(name: "BallotAudit", targets: ["BallotAudit"]),
        .library(name: "BallotLedger", targets: ["BallotLedger"]),
        .library(name: "BallotConfig", targets: ["BallotConfig"]),
        .library(name: "BallotProtocol", targets: ["BallotProtocol"]),
        .library(name: "BallotImport", targets: ["BallotImport"]),
        .executable(name: "ballotd", targets: ["ballotd"]),
        .executable(name: "ballotctl", targets: ["ballotctl"]),
        .executable(name: "ballot-bench", targets: ["ballot-bench"]),
        .executable(name: "ballot-replay", targets: ["ballot-replay"]),
        .executable(name: "ballot-fuzz", targets: ["ballot-fuzz"]),
        .executable(name: "ballot-witness", targets: ["ballot-witness"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0", traits: [.defaults, "YAML"]),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CLMDB",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"])]
        ),
        .systemLibrary(name: "CEpoll"),
        // The official NATS C client, with JetStream (Debian's libnats-dev); BallotNATS wraps it.
        .systemLibrary(
            name: "CNATS",
            pkgConfig: "libnats",
            providers: [.apt(["libnats-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        // SHA-256 of many messages at once (AVX-512, or the x86 SHA extensions), for the Merkle tree.
        .target(name: "CSHA256Batch"),
        .target(
            name: "BallotStore",
            dependencies: ["CLMDB"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "BallotCollections",
            swiftSettings: strictSettings
        ),
        .target(
            name: "BallotDomain",
            dependencies: ["BallotCollections"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "BallotFormat",
            dependencies: [
                "BallotStore",
                "BallotDomain",
                "BallotCollections",
                "COpenSSL",
                "CSHA256Batch",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "BallotAudit",
            dependencies: ["BallotFormat", "BallotDomain", "BallotStore", "BallotCollections"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "BallotLedger",
            dependencies: ["BallotAudit", "BallotFormat", "BallotDomain", "BallotStore", "BallotCollections"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "BallotConfig",
            dependencies: ["BallotDomain"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "BallotProtocol",
            dependencies: [
                "BallotDomain",
                "BallotConfig",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "BallotImport",
            dependencies: ["BallotDomain", "BallotFormat", "BallotAudit", "BallotLedger", "BallotProtocol"],
            swiftSettings: strictSettings
        ),
        // One HTTP/1 request on NIO's client codec: the daemon's requests to witnesses, the
        // monitor's and the receipt check's fetches of tiles.
        .target(
            name: "BallotHTTP",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // NATS JetStream through the official C client: a connection, streams, a durable pull
        // consumer, publishing with message ids. Nothing of the domain.
        .target(
            name: "BallotNATS",
            dependencies: ["CNATS"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "BallotDaemon",
            dependencies: [
                "BallotDomain", "BallotStore", "BallotFormat", "BallotAudit", "BallotLedger", "BallotProtocol",
                "BallotConfig", "BallotImport", "BallotHTTP", "BallotNATS", "BallotClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "ballotd",
            dependencies: [
                "BallotDaemon", "BallotDomain",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "ballot-bench",
            dependencies: ["BallotLedger", "BallotAudit", "BallotFormat", "BallotDomain", "BallotStore", "BallotClient", "BallotProtocol", "BallotNATS", "CEpoll"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "BallotReport",
            dependencies: ["BallotDomain", "BallotFormat", "BallotAudit"],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "ballot-replay",
            dependencies: [
                "BallotReport", "BallotAudit", "BallotFormat", "BallotDomain", "BallotStore", "BallotHTTP",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        // The blocking client of ballotctl, the benchmarks and the tests: over the Unix socket,
        // or over mutual TLS (on NIO and swift-nio-ssl).
        .target(
            name: "BallotClient",
            dependencies: [
                "BallotProtocol",
                "BallotDomain",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictSettings
        ),
        // A transparency-log witness (c2sp.org/tlog-witness): its decisions (`Witness`, no
        // sockets), its state file, and its HTTP side on NIO's HTTP/1 server.
        .target(
            name: "BallotWitness",
            dependencies: [
                "BallotFormat", "BallotDomain",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "ballot-witness",
            dependencies: [
                "BallotWitness", "BallotFormat", "BallotDomain",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        // What the fuzzers feed (issue 18, method 3): request lines, vote files, records and
        // altered ledgers, each with the property it must keep. ballot-fuzz is thin: libFuzzer
        // drives it when scripts/fuzz builds it so; the tests replay the committed corpora.
        .target(
            name: "BallotFuzz",
            dependencies: [
                "BallotProtocol", "BallotImport", "BallotLedger", "BallotAudit", "BallotFormat", "BallotStore", "BallotDomain",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "ballot-fuzz",
            dependencies: ["BallotFuzz"],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "ballotctl",
            dependencies: [
                "BallotClient", "BallotProtocol", "BallotConfig", "BallotDomain", "BallotFormat", "BallotNATS",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "TestSupport",
            dependencies: ["BallotLedger", "BallotAudit", "BallotFormat", "BallotDomain", "BallotStore", "BallotClient", "BallotProtocol", "BallotConfig"],
            path: "Tests/TestSupport",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "BallotFuzzTests",
            dependencies: ["BallotFuzz", "TestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "BallotWitnessTests",
            dependencies: ["BallotWitness", "BallotLedger", "BallotFormat", "BallotDomain", "TestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "BallotStoreTests",
            dependencies: ["BallotStore", "TestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "BallotCollectionsTests",
            dependencies: ["BallotCollections", "BallotClient"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "BallotDomainTests",
            dependencies: ["BallotDomain", "TestSupport", .product(name: "PropertyBased", package: "swift-property-based")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "BallotImportTests",
            dependencies: ["BallotImport", "BallotLedger", "BallotAudit", "BallotFormat", "BallotDomain", "TestSupport", "BallotClient",
                           .product(name: "PropertyBased", package: "swift-property-based")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "BallotProtocolTests",
            dependencies: [
                "BallotProtocol", "BallotDomain", "BallotConfig", "TestSupport",
                .product(name: "PropertyBased", package: "swift-property-based"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "BallotDaemonTests",
            dependencies: [
                "BallotDaemon", "BallotDomain", "BallotFormat", "BallotAudit", "BallotLedger", "BallotStore", "BallotProtocol",
                "BallotImport", "BallotNATS", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "BallotReplayTests",
            dependencies: ["BallotLedger", "BallotAudit", "BallotFormat", "BallotDomain", "BallotStore", "TestSupport", "BallotClient"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "BallotConfigTests",
            dependencies: ["BallotConfig", "BallotLedger", "BallotAudit", "BallotFormat", "BallotDomain", "TestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "BallotLedgerTests",
            dependencies: ["BallotLedger", "BallotAudit", "BallotFormat", "BallotCollections", "BallotDomain", "BallotStore", "TestSupport", "BallotClient",
                           .product(name: "PropertyBased", package: "swift-property-based")],
            swiftSettings: strictSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
