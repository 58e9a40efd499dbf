public import Foundation
@_exported import BallotClient
@_exported import BallotProtocol
@_exported import BallotDomain
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

    /// The directory of the built executables (`ballotd`, `ballotctl`, `ballot-replay`).
    public static var binaryDirectory: String { URL(fileURLWithPath: binary).deletingLastPathComponent().path }

    /// Starts a daemon; `arguments` are added to the data directory, socket and secret.
    public init(directory: TemporaryDirectory = TemporaryDirectory("ballotd"), arguments: [String] = [],
                environment: [String: String] = [:], waitForSocket: Bool = true) throws {
        self.directory = directory
        dataDirectory = directory.sub("data")
        socketPath = directory.sub("ballotd.sock")
        logPath = directory.sub("ballotd.log")
        let secret = directory.sub("secret")
        if !FileManager.default.fileExists(atPath: secret) {
            try Data((0..<32).map { UInt8($0 * 7 + 3) }).write(to: URL(fileURLWithPath: secret))
        }
        process = try Self.launch(["--data-dir", dataDirectory, "--socket", socketPath, "--secret-file", secret, "--log-level", "debug"] + arguments,
                                  log: logPath, environment: environment)
        if waitForSocket { try waitUntilServing() }
    }

    static func launch(_ arguments: [String], log: String, environment: [String: String] = [:]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
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
            if let client = try? BallotClient(socketPath: socketPath), (try? client.call(.hello)) != nil { return }
            if !process.isRunning { throw DaemonTestError("ballotd exited early: \(log)") }
            usleep(20_000)
        }
        throw DaemonTestError("ballotd did not serve \(socketPath) within \(timeout) s: \(log)")
    }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// SIGTERM, and the exit status once it has exited.
    @discardableResult
    /// SIGTERM, and the exit status. A daemon that does not exit 0 (a sanitizer's report, say)
    /// prints the end of its log, which would otherwise go with its temporary directory.
    public func terminate() -> Int32 {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        if process.terminationStatus != 0, process.terminationReason == .exit {
            print("ballotd exited \(process.terminationStatus); the end of its log (\(logPath)):\n\(log.suffix(20_000))")
        }
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


/// Runs a built executable from the same directory as `ballotd` (`ballotctl`, say) to completion.
public func runTool(_ name: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
    try run(URL(fileURLWithPath: DaemonProcess.binaryDirectory).appendingPathComponent(name), arguments, environment: environment)
}

/// Runs any program (by its path) to completion.
public func runProgram(_ path: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    try run(URL(fileURLWithPath: path), arguments)
}

/// Runs the independent Python verifier, `scripts/verify-ledger.py`, to completion.
public func runPythonVerifier(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    try run(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "\(Fixtures.repositoryRoot)/scripts/verify-ledger.py"] + arguments)
}

private func run(_ executable: URL, _ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
    let p = Process()
    p.executableURL = executable
    p.arguments = arguments
    p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
}
