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
            defaults. See config/ballotd.yaml for every key.
            """)

    @Option(name: .customLong("config"), help: "The YAML configuration file.")
    var configFile: String?

    @Option(name: .customLong("data-dir"), help: "Directory of the ledger (created if missing). Key: data_dir.")
    var dataDirectory: String?

    @Option(name: .customLong("socket"), help: "Path of the Unix socket to serve. Key: socket.")
    var socketPath: String?

    @Option(name: .customLong("secret-file"), help: "File holding the HMAC secret for voter identifiers (16 bytes or more). Key: secret_file.")
    var secretFile: String?

    @Option(name: .customLong("checkpoint-key-file"), help: "The Ed25519 checkpoint signing key, created if missing. Key: checkpoint_key_file.")
    var checkpointKeyFile: String?

    @Option(name: .customLong("socket-mode"), help: "Octal permissions of the socket file. Key: socket_mode.")
    var socketMode: String?

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

    @Flag(name: .customLong("no-verify"), help: "Skip re-checking every event and the Merkle tree when opening the ledger (a faster start). Key: verify_on_open.")
    var noVerify = false

    func validate() throws {
        if let logLevel, Logger.Level(rawValue: logLevel) == nil { throw ValidationError("--log-level '\(logLevel)' is not a log level") }
    }

    func run() async throws {
        var flags: [String: String] = [:]
        flags["data_dir"] = dataDirectory
        flags["socket"] = socketPath
        flags["secret_file"] = secretFile
        flags["socket_mode"] = socketMode
        flags["checkpoint_key_file"] = checkpointKeyFile
        flags["log_level"] = logLevel
        if noVerify { flags["verify_on_open"] = "false" }
        var lists: [String: [String]] = [:]
        if !adminUIDs.isEmpty { lists["access.admin_uids"] = adminUIDs.map(String.init) }
        if !importerUIDs.isEmpty { lists["access.importer_uids"] = importerUIDs.map(String.init) }
        if !observerUIDs.isEmpty { lists["access.observer_uids"] = observerUIDs.map(String.init) }
        if !jurors.isEmpty { lists["access.jurors"] = jurors }

        let loaded: (config: DaemonConfig, logLevel: String)
        do {
            loaded = try await DaemonConfigLoader.load(configFile: configFile, commandLine: flags, commandLineLists: lists, daemonUID: getuid())
        } catch {
            FileHandle.standardError.write(Data("ballotd: \(error)\n".utf8))
            throw ExitCode(64)
        }
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Commit latency buckets, 200 µs to 1 s.
        factory.defaultDurationHistogramBuckets = [200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000, 500_000, 1_000_000].map { .microseconds($0) }
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
