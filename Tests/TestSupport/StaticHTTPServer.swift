public import Foundation

/// `python3 -m http.server` on 127.0.0.1 serving a directory: the stock web server a published
/// tiles directory is meant for.
public final class StaticHTTPServer: @unchecked Sendable {
    public let url: String
    private let process: Process

    public init(directory: String) throws {
        let (p, line) = try launchReadingFirstLine("/usr/bin/python3", ["-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", directory])
        // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
        let words = line.split(separator: " ")
        guard let at = words.firstIndex(of: "port"), at + 1 < words.count, let port = Int(words[at + 1]) else {
            kill(p.processIdentifier, SIGKILL)
            throw DaemonTestError("http.server said: \(line)")
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

/// Starts `executable` with `arguments` and returns it with the first line it prints (what a
/// server says once it listens: its port), its standard error discarded.
public func launchReadingFirstLine(_ executable: String, _ arguments: [String]) throws -> (process: Process, line: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
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
    return (p, String(decoding: line, as: UTF8.self))
}
