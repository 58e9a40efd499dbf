import Testing
import Foundation
import TestSupport
import BallotDomain
import BallotFormat

/// The issue's whole story on loopback: a daemon, two witness processes (2 of 2), its tiles
/// served by a stock HTTP server (`python3 -m http.server`), a monitor and a receipt check over
/// HTTP. Then a witness stops (votes flow, a certification that requires witnesses waits and
/// fails), and the data directory is put back to an older backup (the witnesses refuse, and
/// the monitor exits 2).
@Suite(.serialized, .timeLimit(.minutes(3))) struct TransparencyEndToEndTests {
    let witnessing = WitnessingTests()

    @Test func witnessesTilesReceiptsAndAMonitorCatchARollback() throws {
        let logEntry = witnessing.logEntry
        let w1 = try WitnessProcess(name: "witness.example/w1", logs: [logEntry])
        let w2 = try WitnessProcess(name: "witness.example/w2", logs: [logEntry])
        let dir = TemporaryDirectory("ballotd")
        let tiles = dir.sub("tiles")
        try FileManager.default.createDirectory(atPath: tiles, withIntermediateDirectories: true)
        let http = try StaticHTTPServer(directory: tiles)
        defer { http.stop() }
        let policy = witnessing.policy([w1, w2], quorum: "group both 2 w1 w2\nquorum both")
        var daemon = try witnessing.daemon(dir, policy: policy, environment: ["BALLOTD_TILES_DIR": tiles])
        var c = try BallotClient(socketPath: daemon.socketPath)
        var live = DaemonTests.liveElection("live", publicStandings: true)
        live.witnessesRequired = false
        #expect(try c.call(.electionDefine(live)).isOK)
        try witnessing.readyToCertify(c, "prize-a")
        try (witnessing.logKey.publicKey.hex + "\n").write(toFile: dir.sub("log.pub"), atomically: true, encoding: .utf8)
        let keys = ["--witness-key", w1.verifierKey, "--witness-key", w2.verifierKey]
        func monitor() throws -> (status: Int32, stdout: String, stderr: String) {
            try runTool("ballot-replay", ["monitor", "--tiles", http.url, "--state", dir.sub("monitor.state"), "--pubkey", dir.sub("log.pub")] + keys)
        }
        /// Takes a checkpoint and waits until the tiles publish it with both cosignatures.
        func witnessedAndPublished() throws -> Int64 {
            let size = try witnessing.checkpointSize(c)
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                let text = (try? String(contentsOfFile: tiles + "/checkpoint", encoding: .utf8)) ?? ""
                if text.split(separator: "\n").dropFirst().first == "\(size)", text.components(separatedBy: "\n— ").count == 4 { return size }
                usleep(50_000)
            }
            throw DaemonTestError("no cosigned checkpoint of \(size) events was published")
        }

        // Votes arrive; a receipt is saved once a witnessed checkpoint covers its vote.
        for i in 0..<40 { #expect(try c.call(.vote("a\(i)@x.no", "kinn", election: "live", castAt: nil)).isOK) }
        let vote = try c.request(.vote("receipt@x.no", "bodo", election: "live", castAt: nil), as: WriteReceipt.self).seq
        let first = try witnessedAndPublished()
        let receipt = dir.sub("vote.tlog-proof")
        let saved = try runTool("ballotctl", ["--socket", daemon.socketPath, "receipt", "--seq", "\(vote)", "--out", receipt])
        #expect(saved.status == 0, "\(saved)")
        let seen = try monitor()
        #expect(seen.status == 0 && seen.stdout.contains("first seen: \(first) events"), "\(seen)")
        let checked = try runTool("ballot-replay", ["receipt", receipt, "--pubkey", dir.sub("log.pub"), "--tiles", http.url] + keys)
        #expect(checked.status == 0 && checked.stdout.contains("still holds it"), "\(checked)")
        let python = try runPythonVerifier(["--tiles", http.url, "--pubkey", witnessing.logKey.publicKey.hex,
                                            "--witness", "witness.example/w1=\(w1.publicKeyHex)", "--witness", "witness.example/w2=\(w2.publicKeyHex)"])
        #expect(python.status == 0 && python.stdout.contains("\(first) events in the tiles hash to the signed root"), "\(python)")

        // A backup of this moment; then the ledger grows, and the monitor follows.
        #expect(daemon.terminate() == 0)
        let backup = TemporaryDirectory("backup")
        try FileManager.default.copyItem(atPath: daemon.dataDirectory, toPath: backup.sub("data"))
        daemon = try witnessing.daemon(dir, policy: policy, environment: ["BALLOTD_TILES_DIR": tiles])
        c = try BallotClient(socketPath: daemon.socketPath)
        for i in 0..<30 { #expect(try c.call(.vote("b\(i)@x.no", "kinn", election: "live", castAt: nil)).isOK) }
        let second = try witnessedAndPublished()
        let followed = try monitor()
        #expect(followed.status == 0 && followed.stdout.contains("extends \(first) to \(second) events"), "\(followed)")

        // One witness stopped: votes and checkpoints go on; the certification waits, then fails.
        w2.stop()
        for i in 0..<20 { #expect(try c.call(.vote("c\(i)@x.no", "bodo", election: "live", castAt: nil)).isOK) }
        #expect(try c.call(.checkpoint(latest: false)).isOK)
        let refused = try c.call(.resultCertify("prize-a", justification: ""))
        #expect(refused.errorCode == .notWitnessed, "\(refused)")
        try w2.start()

        // Put back to the backup: the daemon publishes its older tree, the monitor exits 2 naming
        // both checkpoints, and the witnesses refuse the next checkpoint of this history.
        #expect(daemon.terminate() == 0)
        try FileManager.default.removeItem(atPath: daemon.dataDirectory)
        try FileManager.default.copyItem(atPath: backup.sub("data"), toPath: daemon.dataDirectory)
        daemon = try witnessing.daemon(dir, policy: policy, environment: ["BALLOTD_TILES_DIR": tiles])
        c = try BallotClient(socketPath: daemon.socketPath)
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, (try? String(contentsOfFile: tiles + "/checkpoint", encoding: .utf8))?.split(separator: "\n").dropFirst().first != "\(first)" {
            usleep(50_000)
        }
        let caught = try monitor()
        #expect(caught.status == 2 && caught.stderr.contains("rollback") && caught.stderr.contains("\(second) events") && caught.stderr.contains("\(first) events"), "\(caught)")
        for i in 0..<15 { #expect(try c.call(.vote("d\(i)@x.no", "kinn", election: "live", castAt: nil)).isOK) }
        let next = try witnessing.checkpointSize(c)
        // Each witness has cosigned a larger tree of this log than the new checkpoint: both refuse it.
        let until = Date().addingTimeInterval(20)
        func answers() throws -> [String] {
            (try c.request(.status, as: StatusResult.self).witnessing["witnesses"]?.arrayValue ?? []).map {
                "\($0["last"]?.stringValue ?? ""): \($0["reason"]?.stringValue ?? "")"
            }
        }
        while Date() < until, !(try answers().allSatisfy { $0.contains("past this checkpoint's \(next)") }) { usleep(100_000) }
        let refusals = try answers()
        #expect(refusals.count == 2 && refusals.allSatisfy { $0.hasPrefix("conflict: ") && $0.contains("past this checkpoint's \(next)") }, "\(refusals)")
        let stillCaught = try monitor()
        #expect(stillCaught.status == 2, "\(stillCaught)")
        #expect(daemon.terminate() == 0)
    }
}
