import Foundation
import Logging
import BallotDomain
import BallotLedger
#if canImport(Glibc)
import Glibc
#endif

/// The checkpoint signing key on disk: the 32-byte Ed25519 seed as 64 hex digits. Like an SSH
/// host key, it is made on first start if missing (mode 0600, its public key beside it in
/// `FILE.pub`), and refused if anyone but its owner may read it.
enum CheckpointKeyFile {
    static func loadOrCreate(_ path: String, logger: Logger) throws -> CheckpointKey {
        var info = stat()
        guard stat(path, &info) == 0 else {
            guard errno == ENOENT else { throw DaemonError.setup("cannot read the checkpoint key \(path): \(String(cString: strerror(errno)))") }
            return try create(path, logger: logger)
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
        return try seed.withBytes { try CheckpointKey(seed: Array($0)) }
    }

    /// Makes a new key at `path`, which must not exist (`ballotd init`, or a first start).
    static func create(_ path: String, logger: Logger) throws -> CheckpointKey {
        let key = CheckpointKey()
        let seedHex = key.seed.withUnsafeBytes { hexString($0) }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw DaemonError.setup("cannot create the checkpoint key \(path): \(String(cString: strerror(errno)))") }
        let line = Array("\(seedHex)\n".utf8)
        let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == line.count, synced else {
            unlink(path)
            throw DaemonError.setup("cannot write the checkpoint key \(path)")
        }
        do {
            try "\(key.publicKey.hex)\n".write(toFile: "\(path).pub", atomically: true, encoding: .utf8)
        } catch {
            logger.warning("could not write the public key file", metadata: ["checkpoint.public_key_file": "\(path).pub", "error": "\(error)"])
        }
        logger.notice("created a checkpoint signing key", metadata: ["checkpoint.key_file": "\(path)", "checkpoint.public_key": "\(key.publicKey.hex)"])
        return key
    }
}
