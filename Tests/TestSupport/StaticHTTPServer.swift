import Foundation

/// `python3 -m http.server` on 127.0.0.1 serving a directory: the stock web server a published
/// tiles directory is meant for.
public final class StaticHTTPServer: @unchecked Sendable {
    public let url: String
    private let process: Process

    public init(directory: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = ["-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", directory]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        var line = Data()
        while !line.contains(0x0A) {
            let more = out.fileHandleForReading.availableData
            if more.isEmpty { break }
            line += more
        }
        // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
        let words = String(decoding: line, as: UTF8.self).split(separator: " ")
        guard let at = words.firstIndex(of: "port"), at + 1 < words.count, let port = Int(words[at + 1]) else {
            p.terminate()
            throw DaemonTestError("http.server said: \(String(decoding: line, as: UTF8.self))")
        }
        process = p
        url = "http://127.0.0.1:\(port)"
    }

    /// SIGKILL: the test process may block SIGTERM, and a child inherits the blocked mask, so
    /// Python would never see a SIGTERM.
    public func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop() }
}
