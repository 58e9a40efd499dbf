import Foundation

/// A `ballot-witness` process as an independent party runs it, on loopback: its own key and
/// state file in `directory`, witnessing the logs given as ORIGIN=PUBKEY. `stop` and `start`
/// keep the port, so that a log configured with its URL finds it again.
public final class WitnessProcess: @unchecked Sendable {
    public let name: String
    public let directory: TemporaryDirectory
    public private(set) var port: Int = 0
    /// Its verifier key (c2sp.org/signed-note vkey), as it printed it.
    public private(set) var verifierKey = ""
    public var publicKeyHex: String
    private let logs: [String]
    private var process: Process?

    public init(name: String, logs: [String], directory: TemporaryDirectory = TemporaryDirectory("witness")) throws {
        self.name = name
        self.logs = logs
        self.directory = directory
        let keygen = try runTool("ballot-witness", ["keygen", "--out", directory.sub("witness.key"), "--name", name])
        guard keygen.status == 0, let hex = keygen.stdout.split(separator: "\n").first(where: { $0.hasPrefix("public_key: ") })?.dropFirst(12) else {
            throw DaemonTestError("ballot-witness keygen: \(keygen.stderr)")
        }
        publicKeyHex = String(hex)
        try start()
    }

    public var url: String { "http://127.0.0.1:\(port)" }

    public func start() throws {
        let (p, line) = try launchReadingFirstLine(DaemonProcess.binaryDirectory + "/ballot-witness",
            ["serve", "--name", name, "--key", directory.sub("witness.key"), "--state", directory.sub("witness.state"),
             "--listen", "127.0.0.1:\(port)"] + logs.flatMap { ["--log", $0] })
        // "listening on HOST:PORT as VKEY"
        let words = line.split(whereSeparator: \.isWhitespace)
        guard words.count == 5, let port = words[2].split(separator: ":").last.flatMap({ Int($0) }) else {
            p.terminate()
            throw DaemonTestError("ballot-witness serve said: \(line)")
        }
        self.port = port
        verifierKey = String(words[4])
        process = p
    }

    public func stop() {
        process?.terminate()
        process?.waitUntilExit()
        process = nil
    }

    deinit { stop() }
}
