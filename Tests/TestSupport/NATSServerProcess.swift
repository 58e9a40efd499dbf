import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Debian's `nats-server` with JetStream, on loopback, its store in a temporary directory.
/// `kill` and `start` keep the port and the store, as a restarted server on one machine would.
public final class NATSServerProcess: @unchecked Sendable {
    public let directory: TemporaryDirectory
    public private(set) var port = 0
    private var process: Process?

    public init(directory: TemporaryDirectory = TemporaryDirectory("nats")) throws {
        self.directory = directory
        try start()
    }

    public var url: String { "nats://127.0.0.1:\(port)" }

    /// Starts the server: on a port of its own choosing the first time, on the same one after.
    public func start() throws {
        let log = directory.sub("nats-\(Date().timeIntervalSince1970).log")
        FileManager.default.createFile(atPath: log, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/sbin/nats-server")
        if !FileManager.default.isExecutableFile(atPath: p.executableURL!.path) { p.executableURL = URL(fileURLWithPath: "/usr/bin/nats-server") }
        p.arguments = ["-js", "-a", "127.0.0.1", "-p", port == 0 ? "-1" : "\(port)", "-sd", directory.sub("store"), "-l", log]
        try p.run()
        process = p
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if port == 0, let line = text.split(separator: "\n").first(where: { $0.contains("Listening for client connections on") }),
               let found = line.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) {
                port = found
            }
            if port != 0 && text.contains("Server is ready") { return }
            if !p.isRunning { throw DaemonTestError("nats-server exited: \(text)") }
            usleep(20_000)
        }
        throw DaemonTestError("nats-server did not start within 20 s (log \(log))")
    }

    /// SIGKILL: the server dies with what it had not yet written.
    public func kill() {
        guard let p = process else { return }
        if p.isRunning { Glibc.kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        process = nil
    }

    public func stop() {
        guard let p = process else { return }
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        process = nil
    }

    deinit { stop() }
}
