import Foundation
import Logging
import BallotDomain
import BallotLedger
import BallotFormat
import BallotAudit
#if canImport(Glibc)
import Glibc
#endif

/// The checkpoint signing key on disk: the 32-byte Ed25519 seed as 64 hex digits. Like an SSH
/// host key, it is made on first start if missing (mode 0600, its public key beside it in
/// `FILE.pub`), and refused if anyone but its owner may read it.
enum CheckpointKeyFile {
    /// The key in `path`, or a new one made there if there is none (`created`).
    static func loadOrCreate(_ path: String, logger: Logger) throws -> (key: CheckpointKey, created: Bool) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            guard errno == ENOENT else { throw DaemonError.setup("cannot read the checkpoint key \(path): \(String(cString: strerror(errno)))") }
            return (try create(path, logger: logger), true)
        }
        guard info.st_mode & 0o077 == 0 else {
            throw DaemonError.setup("the checkpoint key \(path) has mode \(String(info.st_mode & 0o777, radix: 8)); only its owner may read it (chmod 600)")
        }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw DaemonError.setup("cannot read the checkpoint key \(path): \(error.localizedDescription)")
        }
        guard let seed = Digest32(hex: text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw DaemonError.setup("the checkpoint key \(path) is not 64 hex digits (an Ed25519 seed)")
        }
        return (try seed.withBytes { try CheckpointKey(seed: Array($0)) }, false)
    }

    /// A ledger is signed by one key for its life: auditors pin it, and a checkpoint by another
    /// is a finding. So a key that is not the one the ledger's last checkpoint names (a lost
    /// or mistyped key file) stops the start, and a key made just now for it is taken back.
    static func requireLedgersKey(_ key: CheckpointKey, path: String, created: Bool, signedBy ledgerKey: Digest32?) throws {
        guard let ledgerKey, ledgerKey != key.publicKey else { return }
        if created {
            unlink(path)
            unlink("\(path).pub")
        }
        let found = created ? "there was no key file \(path)" : "the key file \(path) holds key \(key.publicKey.hex)"
        throw DaemonError.setup("the ledger's checkpoints are signed by key \(ledgerKey.hex), but \(found); restore the key file the ledger was started with (a checkpoint by another key is a finding for every auditor)")
    }

    /// Makes a new key at `path`, which must not exist (`ballotd init`, or a first start).
    /// `requirePublicKeyFile`: a `FILE.pub` that cannot be written is an error (for `ballotd
    /// init`, which reports it), not a warning.
    static func create(_ path: String, logger: Logger, requirePublicKeyFile: Bool = false) throws -> CheckpointKey {
        let key = CheckpointKey()
        let seedHex = key.seed.withUnsafeBytes { hexString($0) }
        if let reason = SecretFile.writeNew(path, Array("\(seedHex)\n".utf8)) {
            throw DaemonError.setup("cannot write the checkpoint key \(path): \(reason)")
        }
        do {
            try "\(key.publicKey.hex)\n".write(toFile: "\(path).pub", atomically: true, encoding: .utf8)
        } catch {
            if requirePublicKeyFile {
                unlink(path)
                throw DaemonError.setup("cannot write the public key file \(path).pub: \(error.localizedDescription)")
            }
            logger.warning("could not write the public key file", metadata: ["checkpoint.public_key_file": "\(path).pub", "error": "\(error)"])
        }
        logger.notice("created a checkpoint signing key", metadata: ["checkpoint.key_file": "\(path)", "checkpoint.public_key": "\(key.publicKey.hex)"])
        return key
    }
}
