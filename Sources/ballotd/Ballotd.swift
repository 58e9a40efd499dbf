import ArgumentParser
import BallotDaemon
import BallotDomain
import Foundation
import Logging
import ServiceLifecycle

@main
struct Ballotd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ballotd",
        abstract: "The BallotLedger daemon: owns the LMDB ledger and serves its Unix socket.",
        discussion: "Every path can also come from the environment (BALLOTD_DATA_DIR, BALLOTD_SOCKET, BALLOTD_SECRET_FILE); the command line wins.")

    @Option(name: .customLong("data-dir"), help: "Directory of the ledger (created if missing).")
    var dataDirectory: String?

    @Option(name: .customLong("socket"), help: "Path of the Unix socket to serve.")
    var socketPath: String?

    @Option(name: .customLong("secret-file"), help: "File holding the HMAC secret for voter identifiers (16 bytes or more).")
    var secretFile: String?

    @Option(name: .customLong("socket-mode"), help: "Octal permissions of the socket file.")
    var socketMode: String = "0660"

    @Option(name: .customLong("admin-uid"), help: "A uid granted the admin role (repeatable).")
    var adminUIDs: [UInt32] = []

    @Option(name: .customLong("importer-uid"), help: "A uid granted the importer role (repeatable).")
    var importerUIDs: [UInt32] = []

    @Option(name: .customLong("observer-uid"), help: "A uid granted the observer role (repeatable).")
    var observerUIDs: [UInt32] = []

    @Option(name: .customLong("juror"), help: "UID=JUROR: the uid scores as that juror (repeatable).")
    var jurors: [String] = []

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    @Flag(name: .customLong("no-verify"), help: "Skip re-checking every event and the Merkle tree when opening the ledger (a faster start).")
    var noVerify = false

    func validate() throws {
        guard UInt32(socketMode, radix: 8) != nil else { throw ValidationError("--socket-mode '\(socketMode)' is not an octal mode such as 0660") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level '\(logLevel)' is not a log level") }
        for j in jurors {
            let parts = j.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, UInt32(parts[0]) != nil, Slug.isValid(String(parts[1])) else {
                throw ValidationError("--juror '\(j)' should be UID=JUROR, for example 1005=jury-a")
            }
        }
    }

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        var logger = Logger(label: "ballotd")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info

        var access = AccessRules(daemonUID: getuid())
        access.admins = Set(adminUIDs)
        access.importers = Set(importerUIDs)
        access.observers = Set(observerUIDs)
        for j in jurors {
            let parts = j.split(separator: "=", maxSplits: 1)
            access.jurors[UInt32(parts[0])!] = try Slug(String(parts[1]), what: "juror")
        }
        var config = DaemonConfig(
            dataDirectory: dataDirectory ?? env["BALLOTD_DATA_DIR"] ?? "/var/lib/ballotledger",
            socketPath: socketPath ?? env["BALLOTD_SOCKET"] ?? "/run/ballotledger/ballotd.sock",
            secretFile: secretFile ?? env["BALLOTD_SECRET_FILE"] ?? "/etc/ballotledger/voter-secret",
            access: access)
        config.socketMode = UInt32(socketMode, radix: 8)!
        config.verifyOnOpen = !noVerify

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
