import Foundation
import Logging
import BallotLedger
import BallotFormat
import BallotAudit
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `ballotd init`: makes what a first start needs and nothing that exists already. It creates
/// the data directory, the voter secret (32 random bytes, mode 0600) and the checkpoint signing
/// key (with its public key beside it), and the socket's directory if missing. It refuses to
/// overwrite: if the secret, the key or a ledger is already there, it stops before making
/// anything, so that a second `init` can never replace the secret a ledger's voter keys depend on.
public enum DaemonInit {
    /// What `init` made, for the operator to read and back up.
    public struct Report: Sendable {
        public var made: [(what: String, path: String, detail: String)] = []
        public var checkpointPublicKey: String = ""
    }

    /// The length of a new voter secret: HMAC-SHA256's block-sized key would be 64, but 32 bytes
    /// already give the hash's full strength.
    public static let secretLength = 32

    public static func run(_ config: DaemonConfig) throws -> Report {
        let ledgerDirectory = "\(config.dataDirectory)/ledger"
        var existing: [String] = []
        if FileManager.default.fileExists(atPath: "\(ledgerDirectory)/data.mdb") { existing.append("a ledger in \(ledgerDirectory)") }
        if FileManager.default.fileExists(atPath: config.secretFile) { existing.append("the voter secret \(config.secretFile)") }
        if FileManager.default.fileExists(atPath: config.checkpointKeyFile) { existing.append("the checkpoint key \(config.checkpointKeyFile)") }
        guard existing.isEmpty else {
            throw DaemonError.setup("init: refusing to overwrite \(existing.joined(separator: ", ")); nothing was changed (to start afresh, move what is there away first)")
        }

        var report = Report()
        if try makeDirectory(config.dataDirectory, mode: 0o750) {
            report.made.append(("data directory", config.dataDirectory, "mode 0750; the ledger will be \(ledgerDirectory)"))
        }
        let keyDirectories = [parent(of: config.secretFile), parent(of: config.checkpointKeyFile)]
        for directory in keyDirectories.enumerated().filter({ keyDirectories.firstIndex(of: $0.element) == $0.offset }).map(\.element)
        where try makeDirectory(directory, mode: 0o700) {
            report.made.append(("key directory", directory, "mode 0700"))
        }
        let socketDirectory = parent(of: config.socketPath)
        if try makeDirectory(socketDirectory, mode: 0o755) {
            report.made.append(("socket directory", socketDirectory, "mode 0755"))
        }

        var generator = SystemRandomNumberGenerator()
        let secret = (0..<secretLength).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        try writeNew(config.secretFile, bytes: secret, what: "the voter secret")
        report.made.append(("voter secret", config.secretFile, "\(secretLength) random bytes, mode 0600"))

        let key: CheckpointKey
        do {
            // The report below says what was made; a .pub that cannot be written is an error.
            key = try CheckpointKeyFile.create(config.checkpointKeyFile, logger: Logger(label: "ballotd-init"), requirePublicKeyFile: true)
        } catch {
            unlink(config.secretFile)   // all or nothing: a second init must not find half a set-up
            throw error
        }
        report.checkpointPublicKey = key.publicKey.hex
        report.made.append(("checkpoint key", config.checkpointKeyFile, "Ed25519 seed, mode 0600; public key in \(config.checkpointKeyFile).pub"))
        return report
    }

    /// What `init` prints: what it made, what to back up and why, and what to run next.
    /// `startCommand` is how to start the daemon with the same settings.
    public static func describe(_ report: Report, config: DaemonConfig, startCommand: String) -> String {
        var lines = ["ballotd init: made"]
        let width = report.made.map(\.what.count).max() ?? 0
        for item in report.made {
            lines.append("  \(item.what.padding(toLength: width, withPad: " ", startingAt: 0))  \(item.path)  (\(item.detail))")
        }
        lines += [
            "",
            "checkpoint public key: \(report.checkpointPublicKey)",
            "",
            "Back up now, each kept apart from the ledger and from the other:",
            "  \(config.secretFile): the voter secret. A ledger's voter keys are HMACs under it; with",
            "    another secret a voter who already voted is no longer recognised. Never give it out.",
            "  \(config.checkpointKeyFile): the checkpoint signing key. Auditors pin its public key;",
            "    checkpoints signed by a new key are not the same signer's.",
            "Give auditors \(config.checkpointKeyFile).pub (ballot-replay verify --pubkey FILE).",
            "Back up the ledger itself with `ballotctl backup DIR` while the daemon runs.",
            "",
            "Next:",
            "  \(startCommand)",
            "  ballotctl --socket \(config.socketPath) election define config/elections/imdi-2022.json",
        ]
        return lines.joined(separator: "\n")
    }

    static func parent(of path: String) -> String {
        let url = URL(fileURLWithPath: path)
        return url.deletingLastPathComponent().path
    }

    /// Creates `path` and any missing parents; false if it was there already.
    private static func makeDirectory(_ path: String, mode: Int) throws -> Bool {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw DaemonError.setup("init: \(path) exists and is not a directory") }
            return false
        }
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: mode])
        } catch {
            throw DaemonError.setup("init: cannot create the directory \(path): \((error as NSError).localizedFailureReason ?? error.localizedDescription)")
        }
        return true
    }

    private static func writeNew(_ path: String, bytes: [UInt8], what: String) throws {
        if let reason = SecretFile.writeNew(path, bytes) { throw DaemonError.setup("init: cannot write \(what) \(path): \(reason)") }
    }
}

/// A file only its owner may read, made where none was (the voter secret, the checkpoint key).
enum SecretFile {
    /// Writes `bytes` to a new file (`O_EXCL`), mode 0600, and makes it durable; on failure
    /// removes what it made and returns why.
    static func writeNew(_ path: String, _ bytes: [UInt8]) -> String? {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        // errno is read right after the call that failed, before close and unlink change it.
        let reason = written == bytes.count ? (fsync(fd) == 0 ? nil : String(cString: strerror(errno))) : String(cString: strerror(errno))
        close(fd)
        if reason != nil { unlink(path) }
        return reason
    }
}
