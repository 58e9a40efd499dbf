import Testing
import Foundation
import TestSupport

/// `ballotd --config FILE`, overridden by the environment, overridden by the command line.
@Suite(.serialized, .timeLimit(.minutes(2))) struct ConfigurationTests {
    func launch(_ dir: TemporaryDirectory, _ arguments: [String], environment: [String: String] = [:]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: DaemonProcess.binary)
        p.arguments = arguments
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        let log = dir.sub("ballotd-\(UUID().uuidString.prefix(6)).log")
        FileManager.default.createFile(atPath: log, contents: nil)
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try p.run()
        return p
    }

    func waitForSocket(_ path: String) throws -> BallotClient {
        for _ in 0..<200 {
            if let c = try? BallotClient(socketPath: path), (try? c.call(.hello)) != nil { return try BallotClient(socketPath: path) }
            usleep(25_000)
        }
        throw DaemonTestError("nothing serves \(path)")
    }

    @Test func theFileTheEnvironmentAndTheCommandLine() throws {
        let dir = TemporaryDirectory("ballotd-config")
        try Data((0..<32).map { UInt8($0) }).write(to: URL(fileURLWithPath: dir.sub("secret")))
        let file = dir.sub("ballotd.yaml")
        try """
        data_dir: \(dir.sub("data"))
        socket: \(dir.sub("from-file.sock"))
        secret_file: \(dir.sub("secret"))
        access:
          observer_uids: [\(getuid())]
        """.write(toFile: file, atomically: true, encoding: .utf8)

        // The file alone: its socket, its roles.
        var p = try launch(dir, ["--config", file])
        #expect(try waitForSocket(dir.sub("from-file.sock")).request(.hello, as: HelloResult.self).role == "observer")
        p.terminate(); p.waitUntilExit()
        #expect(p.terminationStatus == 0)

        // The environment overrides the file.
        p = try launch(dir, ["--config", file], environment: ["BALLOTD_SOCKET": dir.sub("from-env.sock"), "BALLOTD_ACCESS_OBSERVER_UIDS": "4242"])
        #expect(try waitForSocket(dir.sub("from-env.sock")).request(.hello, as: HelloResult.self).role == "admin")
        p.terminate(); p.waitUntilExit()

        // The command line overrides both.
        p = try launch(dir, ["--config", file, "--socket", dir.sub("from-flag.sock")], environment: ["BALLOTD_SOCKET": dir.sub("from-env.sock")])
        #expect(try waitForSocket(dir.sub("from-flag.sock")).call(.hello).isOK)
        p.terminate(); p.waitUntilExit()
    }

    @Test func aBrokenConfigurationFileIsNamed() throws {
        let dir = TemporaryDirectory("ballotd-config")
        let file = dir.sub("broken.yaml")
        try "data_dir: [unclosed\n".write(toFile: file, atomically: true, encoding: .utf8)
        let result = try DaemonProcess.runToExit(["--config", file], log: dir.sub("out.log"))
        #expect(result.status == 64)
        #expect(result.output.contains(file))
        let missing = try DaemonProcess.runToExit(["--config", dir.sub("missing.yaml")], log: dir.sub("out2.log"))
        #expect(missing.status == 64)
        let badMode = try DaemonProcess.runToExit(["--socket-mode", "rw-rw----", "--data-dir", dir.sub("d")], log: dir.sub("out3.log"))
        #expect(badMode.status == 64)
        #expect(badMode.output.contains("socket_mode"))
    }

    /// A socket that cannot be bound stops the daemon with its reason and a failing exit code
    /// (not a hang with its writer still running); the same ledger then serves on a good one.
    @Test func aSocketThatCannotBeBoundIsNamedAndReleasesTheLedger() throws {
        let dir = TemporaryDirectory("ballotd-bind")
        try Data((0..<32).map { UInt8($0) }).write(to: URL(fileURLWithPath: dir.sub("secret")))
        let common = ["--data-dir", dir.sub("data"), "--secret-file", dir.sub("secret")]
        let unbindable = dir.sub("no-such-directory/ballotd.sock")
        let failed = try DaemonProcess.runToExit(common + ["--socket", unbindable], log: dir.sub("failed.log"))
        #expect(failed.status != 0)
        #expect(failed.output.contains("cannot listen on \(unbindable)"))
        let p = try launch(dir, common + ["--socket", dir.sub("good.sock")])
        #expect(try waitForSocket(dir.sub("good.sock")).call(.hello).isOK)
        p.terminate(); p.waitUntilExit()
        #expect(p.terminationStatus == 0)
    }
}
