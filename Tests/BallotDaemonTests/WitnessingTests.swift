import Testing
import Foundation
import TestSupport
import BallotDomain
import BallotFormat

/// `ballotd` asking real `ballot-witness` processes on loopback to cosign its checkpoints,
/// under a policy in c2sp.org/tlog-policy form (docs/witness.md).
@Suite(.serialized, .timeLimit(.minutes(3))) struct WitnessingTests {
    static let origin = "example.org/witnessing-test"
    let logKey = try! CheckpointKey(seed: Array(repeating: 11, count: 32))

    /// A daemon whose checkpoints are signed with `logKey` under `origin`, asking the witnesses
    /// of `policy` (written to a file), with no interval checkpoints.
    func daemon(_ dir: TemporaryDirectory, policy: String?, timeout: Int = 3, certifyTimeout: Int = 3,
                environment more: [String: String] = [:]) throws -> DaemonProcess {
        let keyFile = dir.sub("checkpoint.key")
        if !FileManager.default.fileExists(atPath: keyFile) {
            try (logKey.seed.map { String(format: "%02x", $0) }.joined() + "\n").write(toFile: keyFile, atomically: true, encoding: .utf8)
            chmod(keyFile, 0o600)
        }
        var environment = ["BALLOTD_CHECKPOINT_ORIGIN": Self.origin, "BALLOTD_CHECKPOINT_INTERVAL": "0", "BALLOTD_WITNESS_TIMEOUT": "\(timeout)",
                           "BALLOTD_WITNESS_CERTIFY_TIMEOUT": "\(certifyTimeout)"]
        if let policy {
            try policy.write(toFile: dir.sub("policy"), atomically: true, encoding: .utf8)
            environment["BALLOTD_WITNESS_POLICY"] = dir.sub("policy")
        }
        return try DaemonProcess(directory: dir, arguments: ["--checkpoint-key-file", keyFile], environment: environment.merging(more) { _, new in new })
    }

    var logEntry: String { "\(Self.origin)=\(logKey.publicKey.hex)" }

    func policy(_ witnesses: [WitnessProcess], quorum: String, more: String = "") -> String {
        "log \(VerifierKey(name: Self.origin, type: SignedNote.ed25519, publicKey: logKey.publicKey))\n"
            + witnesses.enumerated().map { "witness w\($0 + 1) \($1.verifierKey) \($1.url)\n" }.joined()
            + more + quorum + "\n"
    }

    /// A witness that takes connections and never answers: a listening socket nobody accepts
    /// on (the kernel completes the handshakes). Its port, and the process to stop.
    func hungWitness() throws -> (port: Int, process: Process) {
        let (p, line) = try launchReadingFirstLine("/usr/bin/python3",
            ["-c", "import socket,sys,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(64)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(600)"])
        guard let port = Int(line.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            kill(p.processIdentifier, SIGKILL)
            throw DaemonTestError("the hung witness did not say its port")
        }
        return (port, p)
    }

    /// Polls `status` until the witnessed checkpoint covers `size` events.
    func waitUntilWitnessed(_ c: BallotClient, size: Int64, seconds: Double = 20) throws -> JSONValue {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let witnessing = try c.request(.status, as: StatusResult.self).witnessing
            if let w = witnessing["witnessed_checkpoint"], (w["size"]?.intValue ?? 0) >= size { return witnessing }
            usleep(50_000)
        }
        throw DaemonTestError("no checkpoint of \(size) events was witnessed: \(try c.request(.status, as: StatusResult.self).witnessing.text)")
    }

    /// Takes a checkpoint; the number of events it covers.
    func checkpointSize(_ c: BallotClient) throws -> Int64 {
        try #require(try c.request(.checkpoint(latest: false), as: CheckpointTaken.self).checkpoint["size"]?.intValue)
    }

    /// The 2022 election under another id, requiring witnesses, voted on, scored and closed:
    /// ready to certify.
    func readyToCertify(_ c: BallotClient, _ id: String) throws {
        let election = Fixtures.slug(id)
        var spec = DaemonTests.election2022
        spec.id = id
        spec.witnessesRequired = true
        #expect(try c.call(.electionDefine(spec)).isOK)
        for juror: JurorID in ["jury-a", "jury-b"] { _ = try c.call(.jurorAdd(election: election, juror: juror, name: juror.value, key: nil)) }
        for i in 0..<5 {
            #expect(try c.call(.vote("\(id)-\(i)@x.no", "kinn", election: election, castAt: "2022-11-03T10:00:00Z")).isOK)
        }
        for juror: JurorID in ["jury-a", "jury-b"] {
            for nominee: NomineeID in ["bodo", "haugesund", "kinn", "raelingen", "vennesla"] {
                for criterion: CriterionID in ["results", "settlement", "development", "differentiation"] {
                    _ = try c.call(.juryScore(election: election, juror: juror, nominee: nominee, criterion: criterion, score: 7, signed: nil))
                }
            }
        }
        #expect(try c.call(.electionClose(election)).isOK)
        #expect(try c.call(.juryClose(election)).isOK)
    }

    @Test func checkpointsAreCosignedByTwoWitnessesAndACertificationWaitsForThem() throws {
        let w1 = try WitnessProcess(name: "witness.example/w1", logs: [logEntry])
        let w2 = try WitnessProcess(name: "witness.example/w2", logs: [logEntry])
        let dir = TemporaryDirectory("ballotd")
        let text = policy([w1, w2], quorum: "group both 2 w1 w2\nquorum both")
        let policy = try WitnessPolicy(parsing: text)
        let daemon = try daemon(dir, policy: text)
        let c = try BallotClient(socketPath: daemon.socketPath)
        try readyToCertify(c, "prize-a")
        try readyToCertify(c, "prize-b")

        // A checkpoint on request is cosigned by both, and its note is kept beside the ledger.
        let size = try checkpointSize(c)
        let status = try waitUntilWitnessed(c, size: size)
        #expect((status["witnesses"]?.arrayValue ?? []).map { $0["last"]?.stringValue } == ["cosigned", "cosigned"], "\(status.text)")
        let kept = try SignedNote(parsing: Array(try Data(contentsOf: URL(fileURLWithPath: daemon.dataDirectory + "/checkpoint.witnessed"))))
        #expect(policy.cosigners(of: kept).verified == ["w1", "w2"])

        // The certification's reply carries the witnessed note covering it.
        let certified = try c.call(.resultCertify("prize-a", justification: ""))
        #expect(certified.isOK, "\(certified)")
        let receipt = try c.result(of: certified, as: WriteReceipt.self)
        let note = try SignedNote(parsing: Array(try #require(receipt.witnessedNote).utf8))
        let covered = try CheckpointNote(text: note.text)
        #expect(covered.size >= receipt.seq)
        #expect(policy.cosigners(of: note).verified == ["w1", "w2"])
        #expect(note.verifies(name: Self.origin, publicKey: logKey.publicKey) == true)

        // One witness down: votes and checkpoints flow, and a certification waits, then fails
        // naming it.
        w2.stop()
        var live = DaemonTests.liveElection("live")
        live.witnessesRequired = false
        #expect(try c.call(.electionDefine(live)).isOK)
        for i in 0..<20 {
            #expect(try c.call(.vote("live-\(i)@x.no", "kinn", election: "live", castAt: nil)).isOK)
            if i % 5 == 0 { #expect(try c.call(.checkpoint(latest: false)).isOK) }
        }
        let started = Date()
        let refused = try c.call(.resultCertify("prize-b", justification: ""), idempotencyKey: "certify-b")
        #expect(refused.errorCode == .notWitnessed, "\(refused)")
        #expect(Date().timeIntervalSince(started) >= 2.5)
        let message = refused.refusal?.message ?? ""
        #expect(message.contains("w2") && message.contains("event"), "\(message)")

        // Back up: asking again with the same key waits again, and the witnesses cosign.
        try w2.start()
        let again = try c.call(.resultCertify("prize-b", justification: ""), idempotencyKey: "certify-b")
        #expect(again.isOK, "\(again)")
        #expect(again.result?["repeated"]?.boolValue == true)
        #expect(daemon.terminate() == 0)
        #expect(daemon.log.contains("witness did not cosign"))
        // The definitions that require witnesses read the same to both verifiers.
        let python = try runPythonVerifier([daemon.dataDirectory + "/ledger", "--pubkey", logKey.publicKey.hex])
        #expect(python.status == 0, "\(python.stdout)\(python.stderr)")
        try (logKey.publicKey.hex + "\n").write(toFile: dir.sub("log.pub"), atomically: true, encoding: .utf8)
        let replay = try runTool("ballot-replay", ["verify", "--ledger", daemon.dataDirectory + "/ledger", "--pubkey", dir.sub("log.pub")])
        #expect(replay.status == 0, "\(replay.stdout)\(replay.stderr)")
    }

    /// A witness that takes the connection and never answers holds up neither the votes nor a
    /// quorum the other two make: the round answers the certification as soon as they cosign,
    /// well within its wait, though the hung witness has twice as long to answer.
    @Test func aHungWitnessOutsideTheQuorumsNeedHoldsNothingUp() throws {
        let w1 = try WitnessProcess(name: "witness.example/w1", logs: [logEntry])
        let w2 = try WitnessProcess(name: "witness.example/w2", logs: [logEntry])
        let hung = try hungWitness()
        defer { kill(hung.process.processIdentifier, SIGKILL); hung.process.waitUntilExit() }
        let w3Key = try CheckpointKey(seed: Array(repeating: 3, count: 32))
        let w3 = "witness w3 \(VerifierKey(name: "witness.example/w3", type: SignedNote.cosignatureV1, publicKey: w3Key.publicKey)) http://127.0.0.1:\(hung.port)\n"
        let dir = TemporaryDirectory("ballotd")
        let daemon = try daemon(dir, policy: policy([w1, w2], quorum: "group two 2 w1 w2 w3\nquorum two", more: w3),
                                timeout: 20, certifyTimeout: 10)
        let c = try BallotClient(socketPath: daemon.socketPath, timeout: 30)
        try readyToCertify(c, "prize-a")
        var live = DaemonTests.liveElection("live")
        live.witnessesRequired = false
        #expect(try c.call(.electionDefine(live)).isOK)
        for i in 0..<10 {
            #expect(try c.call(.checkpoint(latest: false)).isOK)
            #expect(try c.call(.vote("live-\(i)@x.no", "kinn", election: "live", castAt: nil)).isOK)
        }
        let certified = try c.call(.resultCertify("prize-a", justification: ""))
        #expect(certified.isOK, "\(certified)")
        let witnesses = try #require(try c.request(.status, as: StatusResult.self).witnessing["witnesses"]?.arrayValue)
        #expect(witnesses.map { $0["last"]?.stringValue } == ["cosigned", "cosigned", "not_asked"], "\(witnesses.map { $0.text })")
        #expect(daemon.terminate() == 0)
    }

    /// A vote's receipt as a c2sp.org/tlog-proof, saved by ballotctl once a witnessed checkpoint
    /// covers the vote, and checked offline by ballot-replay with the log's key and the
    /// witnesses' (or the policy); a receipt altered anywhere, or checked against a witness that
    /// did not cosign, is refused.
    @Test func aVotesReceiptIsAStandardProofCheckedOffline() throws {
        let w1 = try WitnessProcess(name: "witness.example/w1", logs: [logEntry])
        let w2 = try WitnessProcess(name: "witness.example/w2", logs: [logEntry])
        let dir = TemporaryDirectory("ballotd")
        let text = policy([w1, w2], quorum: "group both 2 w1 w2\nquorum both")
        let daemon = try daemon(dir, policy: text)
        let env = ["BALLOTD_SOCKET": daemon.socketPath]
        var live = DaemonTests.liveElection("live")
        live.witnessesRequired = false
        let c = try BallotClient(socketPath: daemon.socketPath)
        #expect(try c.call(.electionDefine(live)).isOK)
        // No checkpoint covers a vote yet: the receipt is refused at once, saying so.
        let vote = try c.request(.vote("first@x.no", "kinn", election: "live", castAt: nil), as: WriteReceipt.self).seq
        #expect(try c.call(.receipt(seq: vote, wait: 0)).errorCode == .notWitnessed)

        // ballotctl waits for the checkpoint the test then takes.
        let file = dir.sub("vote.tlog-proof")
        final class Done: @unchecked Sendable { var result: (status: Int32, stdout: String, stderr: String)? }
        let done = Done()
        let finished = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            done.result = try? runTool("ballotctl", ["vote", "cast", "live", "bodo", "--voter", "ola@x.no", "--receipt", file, "--receipt-wait", "20"], environment: env)
            finished.signal()
        }
        usleep(500_000)
        #expect(try c.call(.checkpoint(latest: false)).isOK)
        finished.wait()
        #expect(done.result?.status == 0, "\(String(describing: done.result))")
        let proof = try String(contentsOfFile: file, encoding: .utf8)
        #expect(proof.hasPrefix("c2sp.org/tlog-proof@v1\nextra "))

        try (logKey.publicKey.hex + "\n").write(toFile: dir.sub("log.pub"), atomically: true, encoding: .utf8)
        try text.write(toFile: dir.sub("policy.txt"), atomically: true, encoding: .utf8)
        func check(_ file: String, _ more: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
            try runTool("ballot-replay", ["receipt", file, "--pubkey", dir.sub("log.pub")] + more)
        }
        let held = try check(file, ["--witness-key", w1.verifierKey, "--witness-key", w2.verifierKey])
        #expect(held.status == 0 && held.stdout.contains("vote.cast: live for bodo") && held.stdout.contains("cosigned by witness.example/w1, witness.example/w2"), "\(held)")
        #expect(try check(file, ["--policy", dir.sub("policy.txt")]).status == 0)
        let witnessArgs = ["--witness", "witness.example/w1=\(w1.publicKeyHex)", "--witness", "witness.example/w2=\(w2.publicKeyHex)"]
        let python = try runPythonVerifier(["--receipt", file, "--pubkey", logKey.publicKey.hex] + witnessArgs)
        #expect(python.status == 0 && python.stdout.contains("OK: record \(vote + 1)"), "\(python)")

        // A witness that did not cosign; another log key; a changed proof line; a changed record.
        let stranger = VerifierKey(name: "witness.example/w3", type: SignedNote.cosignatureV1, publicKey: try CheckpointKey(seed: Array(repeating: 9, count: 32)).publicKey)
        let missing = try check(file, ["--witness-key", stranger.description])
        #expect(missing.status == 2 && missing.stderr.contains("no cosignature of the witness witness.example/w3"), "\(missing)")
        try (String(repeating: "ab", count: 32) + "\n").write(toFile: dir.sub("other.pub"), atomically: true, encoding: .utf8)
        let otherKey = try runTool("ballot-replay", ["receipt", file, "--pubkey", dir.sub("other.pub")])
        #expect(otherKey.status == 2 && otherKey.stderr.contains("no signature of the log's key"), "\(otherKey)")
        var lines = proof.components(separatedBy: "\n")
        let index = try #require(lines.firstIndex { $0.hasPrefix("index ") })
        for (name, line) in [("proof", index + 1), ("record", 1)] {
            var altered = lines
            var bytes = Array(altered[line].utf8)
            bytes[bytes.count - 5] = bytes[bytes.count - 5] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            altered[line] = String(decoding: bytes, as: UTF8.self)
            try altered.joined(separator: "\n").write(toFile: dir.sub(name), atomically: true, encoding: .utf8)
            let refused = try check(dir.sub(name), [])
            #expect(refused.status == 2 && refused.stderr.contains("inclusion proof does not put"), "\(name): \(refused)")
            let pythonRefused = try runPythonVerifier(["--receipt", dir.sub(name), "--pubkey", logKey.publicKey.hex])
            #expect(pythonRefused.status == 2, "\(name): \(pythonRefused)")
        }
        lines[0] = "c2sp.org/tlog-proof@v2"
        try lines.joined(separator: "\n").write(toFile: dir.sub("v2"), atomically: true, encoding: .utf8)
        #expect(try check(dir.sub("v2"), []).stderr.contains("line 1 of the proof"))
        #expect(daemon.terminate() == 0)
    }

    @Test func anElectionThatRequiresWitnessesIsNotCertifiedWithoutAPolicy() throws {
        let dir = TemporaryDirectory("ballotd")
        let daemon = try daemon(dir, policy: nil)
        let c = try BallotClient(socketPath: daemon.socketPath)
        try readyToCertify(c, "prize-a")
        let size = try c.request(.status, as: StatusResult.self).ledgerSize
        let refused = try c.call(.resultCertify("prize-a", justification: ""))
        #expect(refused.errorCode == .noWitnesses, "\(refused)")
        #expect(try c.request(.status, as: StatusResult.self).ledgerSize == size)
        #expect(try c.document(.electionGet("prize-a"))["witnesses_required"]?.boolValue == true)
        #expect(daemon.terminate() == 0)
    }

    @Test func aLedgerPutBackToAnOlderCopyIsRefusedByItsWitness() throws {
        let w1 = try WitnessProcess(name: "witness.example/w1", logs: [logEntry])
        let dir = TemporaryDirectory("ballotd")
        let text = policy([w1], quorum: "quorum w1")
        var daemon = try daemon(dir, policy: text)
        var c = try BallotClient(socketPath: daemon.socketPath)
        var live = DaemonTests.liveElection("live")
        live.witnessesRequired = false
        #expect(try c.call(.electionDefine(live)).isOK)
        let first = try checkpointSize(c)
        _ = try waitUntilWitnessed(c, size: first)
        #expect(daemon.terminate() == 0)
        let backup = TemporaryDirectory("backup")
        try FileManager.default.copyItem(atPath: daemon.dataDirectory, toPath: backup.sub("data"))

        // The ledger grows, and the witness cosigns the larger tree.
        daemon = try self.daemon(dir, policy: text)
        c = try BallotClient(socketPath: daemon.socketPath)
        for i in 0..<10 { #expect(try c.call(.vote("v\(i)@x.no", "kinn", election: "live", castAt: nil)).isOK) }
        let second = try checkpointSize(c)
        _ = try waitUntilWitnessed(c, size: second)
        #expect(daemon.terminate() == 0)

        // Put back to the copy: at its start the daemon asks about its newest checkpoint, and
        // the witness, which cosigned a larger tree of this log, refuses; so it does for the
        // next checkpoint of the other history.
        try FileManager.default.removeItem(atPath: daemon.dataDirectory)
        try FileManager.default.copyItem(atPath: backup.sub("data"), toPath: daemon.dataDirectory)
        daemon = try self.daemon(dir, policy: text)
        c = try BallotClient(socketPath: daemon.socketPath)
        func witnessAnswer() throws -> JSONValue? {
            try c.request(.status, as: StatusResult.self).witnessing["witnesses"]?.arrayValue?.first
        }
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, try witnessAnswer()?["last"]?.stringValue != "conflict" { usleep(50_000) }
        let answer = try #require(try witnessAnswer())
        #expect(answer["last"]?.stringValue == "conflict", "\(answer.text)")
        #expect(answer["reason"]?.stringValue?.contains("rolled back") == true, "\(answer.text)")
        for i in 0..<15 { #expect(try c.call(.vote("w\(i)@x.no", "bodo", election: "live", castAt: nil)).isOK) }
        let third = try checkpointSize(c)
        #expect(third > second)
        // Asked from the size it cosigned, with this history's proof: the proof fails.
        let until = Date().addingTimeInterval(10)
        while Date() < until, !((try witnessAnswer()?["reason"]?.stringValue ?? "").contains("consistency proof")) { usleep(50_000) }
        let after = try #require(try witnessAnswer())
        #expect(after["last"]?.stringValue == "conflict" && (after["reason"]?.stringValue ?? "").contains("consistency proof"), "\(after.text)")
        // What counts as witnessed is the copy's own newest checkpoint, cosigned when it was new.
        let witnessed = try c.request(.status, as: StatusResult.self).witnessing["witnessed_checkpoint"]
        #expect(witnessed?["size"]?.intValue == first, "\(String(describing: witnessed?.text))")
        #expect(daemon.terminate() == 0)
        #expect(daemon.log.contains("its view of the log is not this ledger's"))
    }
}
