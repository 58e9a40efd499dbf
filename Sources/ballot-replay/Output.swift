#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// What the commands write, with write(2): `FileHandle` would load Foundation for this alone.

/// Writes every byte of `bytes` to the file descriptor, going on after short writes and
/// interruptions; nil when done, else the `errno` of the write that failed.
func writeFully(_ fd: Int32, _ bytes: [UInt8]) -> Int32? {
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { return n < 0 ? errno : EIO }
        done += n
    }
    return nil
}

/// A warning on standard error; the command goes on.
func warn(_ message: String) {
    _ = writeFully(STDERR_FILENO, Array("ballot-replay: \(message)\n".utf8))
}

/// Writes to standard output; a write that fails ends the command with 74 (I/O error). (A
/// closed pipe ends it first with SIGPIPE, as it does any tool that writes to one.)
func writeOut(_ bytes: [UInt8]) {
    if let error = writeFully(STDOUT_FILENO, bytes) { fail(74, "cannot write to standard output: \(String(cString: strerror(error)))") }
}

/// Writes `bytes` to the file at `path` in full or not at all (a file beside it, renamed over
/// it); nil when done, else what failed and why.
func writeFileAtomically(_ path: String, _ bytes: [UInt8]) -> String? {
    let temporary = "\(path).\(getpid()).tmp"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { return String(cString: strerror(errno)) }
    let failed = writeFully(fd, bytes)
    close(fd)
    if let failed {
        unlink(temporary)
        return String(cString: strerror(failed))
    }
    guard rename(temporary, path) == 0 else {
        let error = errno
        unlink(temporary)
        return String(cString: strerror(error))
    }
    return nil
}
