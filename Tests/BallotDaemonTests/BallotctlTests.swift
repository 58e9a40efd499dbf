import Testing
import Foundation
import TestSupport

/// `ballotctl`, run as a user runs it, against the real daemon.
@Suite(.serialized, .timeLimit(.minutes(2))) struct BallotctlTests {
    @Test func commandsOutputAndExitCodes() throws {
        let daemon = try DaemonProcess()
        let env = ["BALLOTD_SOCKET": daemon.socketPath]
        func ctl(_ args: String...) throws -> (status: Int32, stdout: String, stderr: String) { try runTool("ballotctl", args, environment: env) }

        let hello = try ctl("hello")
        #expect(hello.status == 0)
        #expect(hello.stdout.contains("role: admin"))
        #expect(try ctl("election", "define", Fixtures.electionFile("imdi-2022")).stdout.contains("defined with 6 events"))
        let cast = try ctl("vote", "cast", "imdi-2022", "kinn", "--voter", "ola@example.no", "--cast-at", "2022-11-03T10:00:00Z", "--key", "v1")
        #expect(cast.status == 0)
        #expect(cast.stdout.hasPrefix("event 7, leaf hash "))
        #expect(try ctl("vote", "cast", "imdi-2022", "kinn", "--voter", "ola@example.no", "--cast-at", "2022-11-03T10:00:00Z", "--key", "v1").stdout.contains("already present"))

        let refused = try ctl("vote", "cast", "imdi-2022", "bodo", "--voter", "ola@example.no", "--cast-at", "2022-11-03T10:00:00Z")
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("duplicate_vote"))

        let json = try ctl("--json", "tally", "imdi-2022")
        #expect(json.status == 0)
        let tally = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(tally?["valid_votes"] as? Int == 1)
        #expect(try ctl("tally", "imdi-2022").stdout.contains("1. Kinn"))
        #expect(try ctl("ranking", "imdi-2022").stdout.contains("combined"))

        let checkpoint = try ctl("checkpoint")
        #expect(checkpoint.status == 0 && checkpoint.stdout.contains("checkpoint: event 8 (request)") && checkpoint.stdout.contains("size: 7"))
        #expect(try ctl("checkpoint", "--latest").stdout.contains("checkpoint: event 8"))
        #expect(try ctl("proof", "--seq", "3", "--checkpoint", "8").stdout.contains("checkpoint_seq: 8"))
        #expect(try ctl("proof", "--seq", "3").stdout.contains("path:"))
        #expect(try ctl("proof", "--old-size", "2").stdout.contains("old_root:"))
        #expect(try ctl("proof").status == 64)
        let backup = try ctl("backup", daemon.directory.sub("copy"))
        #expect(backup.status == 0 && backup.stdout.contains("ledger_size: 8"))
        #expect(FileManager.default.fileExists(atPath: daemon.directory.sub("copy/manifest.json")))

        #expect(try ctl("vote", "cast", "imdi-2022").status == 64)
        #expect(try runTool("ballotctl", ["--socket", daemon.directory.sub("nothing.sock"), "hello"]).status == 69)
        #expect(try ctl("election", "define", "/nonexistent.json").status == 65)
        daemon.terminate()
    }
}
