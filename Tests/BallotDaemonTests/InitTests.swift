import Testing
import Foundation
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `ballotd init`: a first start in one command, that never overwrites.
@Suite(.serialized, .timeLimit(.minutes(2))) struct InitTests {
    @Test func initMakesWhatAFirstStartNeedsAndRefusesToOverwrite() throws {
        let dir = TemporaryDirectory("ballotd-init")
        let file = dir.sub("ballotd.yaml")
        try """
        data_dir: \(dir.sub("var/data"))
        socket: \(dir.sub("run/b.sock"))
        secret_file: \(dir.sub("etc/voter-secret"))
        checkpoint_key_file: \(dir.sub("etc/checkpoint.key"))
        """.write(toFile: file, atomically: true, encoding: .utf8)

        let made = try DaemonProcess.runToExit(["init", "--config", file], log: dir.sub("init.log"))
        #expect(made.status == 0, "\(made.output)")
        for path in ["var/data", "run", "etc/voter-secret", "etc/checkpoint.key", "etc/checkpoint.key.pub"] {
            #expect(made.output.contains(dir.sub(path)), "init does not name \(path): \(made.output)")
        }
        #expect(made.output.contains("Back up"))
        #expect(made.output.contains("ballotd --config \(file)"))
        let secret = try Data(contentsOf: URL(fileURLWithPath: dir.sub("etc/voter-secret")))
        #expect(secret.count == 32)
        #expect(Set(secret).count > 8)   // random, not zeros
        for key in ["etc/voter-secret", "etc/checkpoint.key"] {
            let mode = (try FileManager.default.attributesOfItem(atPath: dir.sub(key))[.posixPermissions] as? NSNumber)?.intValue
            #expect(mode == 0o600, "\(key) has mode \(String(mode ?? 0, radix: 8))")
        }
        let publicKey = try String(contentsOfFile: dir.sub("etc/checkpoint.key.pub"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(made.output.contains(publicKey))

        // A second init changes nothing and says why.
        let again = try DaemonProcess.runToExit(["init", "--config", file], log: dir.sub("again.log"))
        #expect(again.status == 73)
        #expect(again.output.contains("refusing to overwrite"))
        #expect(again.output.contains(dir.sub("etc/voter-secret")))
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir.sub("etc/voter-secret"))) == secret)

        // The daemon starts on what init made and signs with its key.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: DaemonProcess.binary)
        p.arguments = ["--config", file, "--log-level", "warning"]
        try p.run()
        defer { if p.isRunning { p.terminate() }; p.waitUntilExit() }
        var hello: ReplyLine?
        for _ in 0..<200 where hello == nil {
            hello = try? BallotClient(socketPath: dir.sub("run/b.sock")).call(.hello)
            if hello == nil { usleep(25_000) }
        }
        #expect(hello?.result?["checkpoint_public_key"]?.stringValue == publicKey)
        p.terminate()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)

        // With a ledger there, even a fresh secret path is refused.
        let other = try DaemonProcess.runToExit(["init", "--config", file, "--secret-file", dir.sub("etc/new-secret"),
                                                 "--checkpoint-key-file", dir.sub("etc/new.key")], log: dir.sub("other.log"))
        #expect(other.status == 73)
        #expect(other.output.contains("a ledger in \(dir.sub("var/data/ledger"))"))
        #expect(!FileManager.default.fileExists(atPath: dir.sub("etc/new-secret")))
    }

    @Test func aMissingOrShortSecretNamesTheFileAndTheCommand() throws {
        let dir = TemporaryDirectory("ballotd-secret")
        let common = ["--data-dir", dir.sub("data"), "--socket", dir.sub("s.sock")]
        let missing = try DaemonProcess.runToExit(common + ["--secret-file", dir.sub("nope")], log: dir.sub("missing.log"))
        #expect(missing.status != 0)
        #expect(missing.output.contains("the voter secret file \(dir.sub("nope")) does not exist"))
        #expect(missing.output.contains("ballotd init"))
        try Data([1, 2, 3, 4, 5]).write(to: URL(fileURLWithPath: dir.sub("short")))
        let short = try DaemonProcess.runToExit(common + ["--secret-file", dir.sub("short")], log: dir.sub("short.log"))
        #expect(short.status != 0)
        #expect(short.output.contains("\(dir.sub("short")) holds 5 bytes"))
        #expect(short.output.contains("ballotd init"))
    }

    /// A ledger is signed by one key for its life. A lost or mistyped key file would sign the
    /// next checkpoint with a new key, which every auditor's verify then calls tampering; so
    /// the start stops, names both keys, and takes back a key it made just then.
    @Test func aStartWithAnotherCheckpointKeyThanTheLedgersStops() throws {
        let daemon = try DaemonProcess()
        let c = try BallotClient(socketPath: daemon.socketPath)
        #expect(try c.call(.electionDefine(DaemonTests.election2022)).isOK)
        let signed = try c.request(.checkpoint(latest: false), as: CheckpointTaken.self).checkpoint
        let ledgerKey = try #require(signed["public_key"]?.stringValue, "\(signed.text)")
        #expect(daemon.terminate() == 0)

        let keyFile = daemon.directory.sub("data/checkpoint.key")
        let kept = try Data(contentsOf: URL(fileURLWithPath: keyFile))
        try FileManager.default.removeItem(atPath: keyFile)
        let common = ["--data-dir", daemon.dataDirectory, "--socket", daemon.socketPath, "--secret-file", daemon.directory.sub("secret")]
        let missing = try DaemonProcess.runToExit(common, log: daemon.directory.sub("missing.log"))
        #expect(missing.status != 0)
        #expect(missing.output.contains("signed by key \(ledgerKey)") && missing.output.contains("there was no key file \(keyFile)"), "\(missing.output)")
        #expect(!FileManager.default.fileExists(atPath: keyFile))   // the key made on that start is gone again

        let other = daemon.directory.sub("other.key")
        let made = try DaemonProcess.runToExit(["init", "--data-dir", daemon.directory.sub("elsewhere"), "--secret-file", daemon.directory.sub("s2"),
                                                "--checkpoint-key-file", other, "--socket", daemon.directory.sub("x.sock")], log: daemon.directory.sub("init.log"))
        #expect(made.status == 0)
        let wrong = try DaemonProcess.runToExit(common + ["--checkpoint-key-file", other], log: daemon.directory.sub("wrong.log"))
        #expect(wrong.status != 0)
        #expect(wrong.output.contains("the key file \(other) holds key"), "\(wrong.output)")
        #expect(FileManager.default.fileExists(atPath: other))   // a key the operator made is never removed

        // The right key back: the daemon serves again.
        try kept.write(to: URL(fileURLWithPath: keyFile))
        chmod(keyFile, 0o600)
        let again = try DaemonProcess(directory: daemon.directory)
        #expect(try BallotClient(socketPath: again.socketPath).request(.hello, as: HelloResult.self).checkpointPublicKey == ledgerKey)
        #expect(again.terminate() == 0)
    }
}
