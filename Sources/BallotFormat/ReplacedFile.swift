#if canImport(Glibc)
import Glibc
#endif
public import BallotCollections

/// A small file that is replaced whole, never changed in place (the kept state's snapshot, a
/// witness's state): written beside (`path.new`) and renamed into place, so that a reader sees
/// the old file or the new, never half of one.
package enum ReplacedFile {
    /// The file's bytes; nil when there is no file.
    package static func read(_ path: String) throws(TableError) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw TableError(call: "open", what: "of \(path)", errno: errno)
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw TableError(call: "read", what: "of \(path)", errno: errno) }
            if n == 0 { return bytes }
            bytes += chunk[..<n]
        }
    }

    /// Writes `bytes` beside `path` and renames them into place; `durable` adds the fsyncs (the
    /// file's, then its directory's) that make the new file survive a crash of the machine.
    /// `mode`: 0600 for what is the owner's alone; published files (tiles) are 0644.
    package static func replace(_ path: String, with bytes: [UInt8], durable: Bool, mode: UInt32 = 0o600) throws(TableError) {
        let temporary = path + ".new"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode_t(mode))
        guard fd >= 0 else { throw TableError(call: "open", what: "of \(temporary)", errno: errno) }
        var failure: TableError?
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                failure = TableError(call: "write", what: "of \(temporary)", errno: errno)
                break
            }
            written += n
        }
        if failure == nil, durable, fsync(fd) != 0 { failure = TableError(call: "fsync", what: "of \(temporary)", errno: errno) }
        close(fd)
        if failure == nil, rename(temporary, path) != 0 { failure = TableError(call: "rename", what: "of \(temporary)", errno: errno) }
        if let failure {
            unlink(temporary)
            throw failure
        }
        if durable {
            let slash = path.lastIndex(of: "/")
            let directory = slash.map { String(path[..<$0]) } ?? "."
            let dir = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if dir >= 0 {
                _ = fsync(dir)
                close(dir)
            }
        }
    }
}
