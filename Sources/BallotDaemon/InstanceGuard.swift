import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Makes sure one daemon owns a data directory and a socket path.
///
/// The data directory is held with `flock` on `ballotd.lock`, which records the holder's pid;
/// the kernel drops the lock when the holder dies, so a crash leaves nothing to clean up. An
/// existing socket file is taken over only if nothing answers on it (a crash left it behind);
/// a live one is never stolen.
struct InstanceGuard {
    private let lockFD: Int32
    let lockPath: String

    init(dataDirectory: String) throws {
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        lockPath = "\(dataDirectory)/ballotd.lock"
        lockFD = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lockFD >= 0 else {
            throw DaemonError.setup("cannot open \(lockPath): \(String(cString: strerror(errno)))")
        }
        if flock(lockFD, LOCK_EX | LOCK_NB) != 0 {
            let holder = (try? String(contentsOfFile: lockPath, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
            close(lockFD)
            throw DaemonError.alreadyRunning("another ballotd (pid \(holder)) holds the data directory \(dataDirectory); refusing to start")
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(lockFD, 0)
        _ = pid.withCString { write(lockFD, $0, strlen($0)) }
    }

    func release() {
        close(lockFD)
    }

    /// Removes a stale socket file at `path`, or throws if a live daemon answers there.
    static func claimSocketPath(_ path: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        guard (st.st_mode & S_IFMT) == S_IFSOCK else {
            throw DaemonError.socketInUse("\(path) exists and is not a socket; refusing to replace it")
        }
        switch connectError(path) {
        case 0:
            throw DaemonError.socketInUse("a live daemon is answering on \(path); refusing to take its socket")
        case ECONNREFUSED:
            break   // nothing listens: a crash left it behind
        case let code:
            throw DaemonError.socketInUse("cannot tell whether a daemon is alive on \(path) (\(String(cString: strerror(code)))); refusing to replace it")
        }
        guard unlink(path) == 0 || errno == ENOENT else {
            throw DaemonError.setup("cannot remove the stale socket \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// 0 if something accepts a connection on `path`, else the `errno` of the attempt.
    private static func connectError(_ path: String) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return ENAMETOOLONG }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let length = socklen_t(MemoryLayout<sockaddr_un>.size)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) }
        }
        return result == 0 ? 0 : errno
    }
}
