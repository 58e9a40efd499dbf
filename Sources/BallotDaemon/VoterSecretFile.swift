import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The operator's HMAC secret for voter identifiers, read at start. A missing or short file is
/// the usual first-start mistake, so its refusal names the file and the command that makes one.
enum VoterSecretFile {
    /// The shortest secret accepted (`VoterHasher` checks the same).
    static let minimumLength = 16
    static let howToMakeOne = "`ballotd init`, given the same --config or --secret-file as this start, makes one (32 random bytes, mode 0600)"

    static func load(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            let reason = errno == ENOENT ? "does not exist" : "cannot be opened: \(String(cString: strerror(errno)))"
            throw DaemonError.setup("the voter secret file \(path) \(reason); \(howToMakeOne)")
        }
        let file = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        let secret: [UInt8]
        do {
            secret = Array(try file.readToEnd() ?? Data())
        } catch {
            throw DaemonError.setup("cannot read the voter secret file \(path): \(error.localizedDescription)")
        }
        guard secret.count >= minimumLength else {
            throw DaemonError.setup("the voter secret file \(path) holds \(secret.count) bytes, fewer than the \(minimumLength) random bytes it needs; move it away, then \(howToMakeOne)")
        }
        return secret
    }
}
