public import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The real `ballotd` binary, started on a temp directory, and a line-based client for its
/// socket. Integration tests talk to the daemon exactly as operators' scripts do.
public final class DaemonProcess: @unchecked Sendable {
    public let directory: TemporaryDirectory
    public let socketPath: String
    public let dataDirectory: String
    public let process: Process
    public let logPath: String

    /// The built `ballotd` next to the test bundle.
    public static var binary: String {
        var url = Bundle.main.bundleURL
        if !FileManager.default.fileExists(atPath: url.appendingPathComponent("ballotd").path) {
            url = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            while url.path != "/" && !FileManager.default.fileExists(atPath: url.appendingPathComponent("ballotd").path) {
                url.deleteLastPathComponent()
            }
        }
        return url.appendingPathComponent("ballotd").path
    }

    /// Starts a daemon; `arguments` are added to the data directory, socket and secret.
    public init(directory: TemporaryDirectory = TemporaryDirectory("ballotd"), arguments: [String] = [], waitForSocket: Bool = true) throws {
        self.directory = directory
        dataDirectory = directory.sub("data")
        socketPath = directory.sub("ballotd.sock")
        logPath = directory.sub("ballotd.log")
        let secret = directory.sub("secret")
        if !FileManager.default.fileExists(atPath: secret) {
            try Data((0..<32).map { UInt8($0 * 7 + 3) }).write(to: URL(fileURLWithPath: secret))
        }
        process = try Self.launch(["--data-dir", dataDirectory, "--socket", socketPath, "--secret-file", secret, "--log-level", "debug"] + arguments,
                                  log: logPath)
        if waitForSocket { try waitUntilServing() }
    }

    static func launch(_ arguments: [String], log: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        handle.seekToEndOfFile()
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        return p
    }

    /// Runs another `ballotd` with these arguments to completion, returning its exit code and output.
    public static func runToExit(_ arguments: [String], log: String) throws -> (status: Int32, output: String) {
        let p = try launch(arguments, log: log)
        p.waitUntilExit()
        return (p.terminationStatus, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }

    public func waitUntilServing(timeout: Double = 20) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let client = try? DaemonClient(socketPath: socketPath), (try? client.call(["op": "hello"])) != nil { return }
            if !process.isRunning { throw DaemonTestError("ballotd exited early: \(log)") }
            usleep(20_000)
        }
        throw DaemonTestError("ballotd did not serve \(socketPath) within \(timeout) s: \(log)")
    }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// SIGTERM, and the exit status once it has exited.
    @discardableResult
    public func terminate() -> Int32 {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// SIGKILL: a crash.
    public func kill() {
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { if process.isRunning { kill() } }
}

public struct DaemonTestError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A blocking client: one JSON object per line each way.
public final class DaemonClient: @unchecked Sendable {
    private let fd: Int32
    private var buffered: [UInt8] = []

    public init(socketPath: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw DaemonTestError("socket: \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketPath.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard ok == 0 else {
            close(fd)
            throw DaemonTestError("connect \(socketPath): \(String(cString: strerror(errno)))")
        }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    public func send(raw: [UInt8]) throws {
        var offset = 0
        while offset < raw.count {
            let n = raw[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw DaemonTestError("write: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    public func send(_ line: String) throws { try send(raw: Array((line + "\n").utf8)) }

    /// The next reply line, decoded; nil when the daemon closed the connection.
    public func readReply() throws -> [String: Any]? {
        while true {
            if let newline = buffered.firstIndex(of: 0x0A) {
                let line = Array(buffered[..<newline])
                buffered.removeFirst(newline + 1)
                guard let object = try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                    throw DaemonTestError("reply is not an object: \(String(decoding: line, as: UTF8.self))")
                }
                return object
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n == 0 { return nil }
            guard n > 0 else { throw DaemonTestError("read: \(String(cString: strerror(errno)))") }
            buffered += chunk[..<n]
        }
    }

    /// Sends a request and returns its reply.
    @discardableResult
    public func call(_ request: [String: Any]) throws -> [String: Any] {
        let data = try JSONSerialization.data(withJSONObject: request)
        try send(raw: Array(data) + [0x0A])
        guard let reply = try readReply() else { throw DaemonTestError("connection closed before a reply to \(request)") }
        return reply
    }
}

extension Dictionary where Key == String, Value == Any {
    /// `result` of an ok reply.
    public var result: [String: Any]? { self["result"] as? [String: Any] }
    /// `error.code` of a refusal.
    public var errorCode: String? { (self["error"] as? [String: Any])?["code"] as? String }
    public var isOK: Bool { self["ok"] as? Bool == true }
}
