import ArgumentParser
import BallotDaemon
import BallotDomain
import Foundation
import Logging
import Metrics
import Prometheus
import ServiceLifecycle

@main
struct Ballotd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ballotd",
        abstract: "The BallotLedger daemon: owns the LMDB ledger and serves its Unix socket.",
        discussion: """
            Settings come from the command line, then BALLOTD_* environment variables, then the \
            configuration file (--config, else /etc/ballotledger/ballotd.yaml if it exists), then \
            defaults. See config/ballotd.yaml for every key. A first start: `ballotd init`, then \
            `ballotd`.
            """,
        subcommands: [Serve.self, Init.self],
        defaultSubcommand: Serve.self)
}

/// Where the daemon's files are: what both `serve` and `init` need.
struct Locations: ParsableArguments {
    @Option(name: .customLong("config"), help: "The YAML configuration file.")
    var configFile: String?

    @Option(name: .customLong("data-dir"), help: "Directory of the ledger (created if missing). Key: data_dir.")
    var dataDirectory: String?

    @Option(name: .customLong("socket"), help: "Path of the Unix socket to serve. Key: socket.")
    var socketPath: String?

    @Option(name: .customLong("secret-file"), help: "File holding the HMAC secret for voter identifiers (16 bytes or more). Key: secret_file.")
    var secretFile: String?

    @Option(name: .customLong("checkpoint-key-file"), help: "The Ed25519 checkpoint signing key (made by init, or on a first start; it must stay the ledger's). Key: checkpoint_key_file.")
    var checkpointKeyFile: String?

    /// These options as they were given, to repeat them.
    var arguments: [String] {
        [("--config", configFile), ("--data-dir", dataDirectory), ("--socket", socketPath), ("--secret-file", secretFile),
         ("--checkpoint-key-file", checkpointKeyFile)].flatMap { flag, value in value.map { [flag, $0] } ?? [] }
    }

    var flags: [String: String] {
        var flags: [String: String] = [:]
        flags["data_dir"] = dataDirectory
        flags["socket"] = socketPath
        flags["secret_file"] = secretFile
        flags["checkpoint_key_file"] = checkpointKeyFile
        return flags
    }

    /// The settings these flags and the rest of the command line give; a bad one exits 64.
    func load(flags more: [String: String] = [:], lists: [String: [String]] = [:]) async throws -> (config: DaemonConfig, logLevel: String) {
        do {
            return try await DaemonConfigLoader.load(configFile: configFile, commandLine: flags.merging(more) { _, new in new },
                                                     commandLineLists: lists, daemonUID: getuid())
        } catch {
            FileHandle.standardError.write(Data("ballotd: \(error)\n".utf8))
            throw ExitCode(64)
        }
    }
}

/// `ballotd [serve]`: run the daemon.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the daemon (the default).")

    @OptionGroup var locations: Locations

    @Option(name: .customLong("socket-mode"), help: "Octal permissions of the socket file. Key: socket_mode.")
    var socketMode: String?

    @Option(name: .customLong("metrics-listen"), help: "HOST:PORT to serve GET /metrics over HTTP, for Prometheus (off unless set). Key: metrics_listen.")
    var metricsListen: String?

    @Option(name: .customLong("admin-uid"), help: "A uid granted the admin role (repeatable). Key: access.admin_uids.")
    var adminUIDs: [UInt32] = []

    @Option(name: .customLong("importer-uid"), help: "A uid granted the importer role (repeatable). Key: access.importer_uids.")
    var importerUIDs: [UInt32] = []

    @Option(name: .customLong("observer-uid"), help: "A uid granted the observer role (repeatable). Key: access.observer_uids.")
    var observerUIDs: [UInt32] = []

    @Option(name: .customLong("juror"), help: "UID=JUROR: the uid scores as that juror (repeatable). Key: access.jurors.")
    var jurors: [String] = []

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical. Key: log_level.")
    var logLevel: String?

    @Option(name: .customLong("verify"), help: "What a start checks with the auditor's engine: tail (the events after the kept state and the newest checkpoint, the default), open (every event before serving), background (tail, then every event while serving; the verdict in status), or off. Key: verify.")
    var verify: String?

    @Flag(name: .customLong("no-verify"), help: "The same as --verify off.")
    var noVerify = false

    @Option(name: .customLong("follow"), help: "unix:///PATH of a primary's socket, or tls://HOST:PORT of its TLS listener (with follow_tls in the configuration): run as its follower, storing its records (each verified) and serving reads; writes are refused as read_only. Key: follow.")
    var follow: String?

    @Option(name: .customLong("follow-checkpoint-key"), help: "The primary's checkpoint public key (64 hex digits): every checkpoint it sends must be signed by it. Key: follow_checkpoint_key.")
    var followCheckpointKey: String?

    func validate() throws {
        if let logLevel, Logger.Level(rawValue: logLevel) == nil { throw ValidationError("--log-level '\(logLevel)' is not a log level") }
    }

    func run() async throws {
        var flags: [String: String] = [:]
        flags["socket_mode"] = socketMode
        flags["metrics_listen"] = metricsListen
        flags["log_level"] = logLevel
        flags["verify"] = noVerify ? "off" : verify
        flags["follow"] = follow
        flags["follow_checkpoint_key"] = followCheckpointKey
        var lists: [String: [String]] = [:]
        if !adminUIDs.isEmpty { lists["access.admin_uids"] = adminUIDs.map(String.init) }
        if !importerUIDs.isEmpty { lists["access.importer_uids"] = importerUIDs.map(String.init) }
        if !observerUIDs.isEmpty { lists["access.observer_uids"] = observerUIDs.map(String.init) }
        if !jurors.isEmpty { lists["access.jurors"] = jurors }
        let loaded = try await locations.load(flags: flags, lists: lists)

        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Latency buckets, 100 µs to 2 s: an fsync on a good disk takes a few hundred µs.
        factory.defaultDurationHistogramBuckets = [100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000, 500_000, 1_000_000, 2_000_000].map { .microseconds($0) }
        factory.defaultValueHistogramBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 10_000]
        MetricsSystem.bootstrap(factory)
        var config = loaded.config
        config.renderMetrics = { registry.emitToBuffer() }
        var logger = Logger(label: "ballotd")
        logger.logLevel = Logger.Level(rawValue: loaded.logLevel) ?? .info

        let daemon = BallotDaemon(config: config, logger: logger)
        let group = ServiceGroup(services: [daemon], gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [], logger: logger)
        do {
            try await group.run()
        } catch {
            FileHandle.standardError.write(Data("ballotd: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// `ballotd init`: make the data directory, the voter secret and the checkpoint key.
struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Make the data directory, the voter secret and the checkpoint key for a first start.",
        discussion: """
            Reads the same settings as the daemon (--config, BALLOTD_*, flags) and creates what they \
            name: the data directory, the voter secret (32 random bytes, mode 0600), the Ed25519 \
            checkpoint key (mode 0600, its public key in FILE.pub) and the socket's directory. \
            Refuses, changing nothing, if the secret, the key or a ledger exists already. Prints \
            what it made and what to back up. Exits 0 when done, 64 on a bad setting, 73 when it \
            refuses or cannot create a file.
            """)

    @OptionGroup var locations: Locations

    func run() async throws {
        let config = try await locations.load().config
        do {
            let report = try DaemonInit.run(config)
            print(DaemonInit.describe(report, config: config, startCommand: (["ballotd"] + locations.arguments).joined(separator: " ")))
        } catch {
            FileHandle.standardError.write(Data("ballotd: \(error)\n".utf8))
            throw ExitCode(73)
        }
    }
}
