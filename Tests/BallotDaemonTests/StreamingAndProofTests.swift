import Testing
import Foundation
import TestSupport
import BallotLedger
import BallotFormat
import BallotAudit
import BallotDomain

@Suite(.serialized, .timeLimit(.minutes(2))) struct StreamingAndProofTests {
    func setUp(_ c: BallotClient, votes: Int) throws {
        _ = try c.call(.electionDefine(DaemonTests.election2022))
        for i in 0..<votes {
            _ = try c.call(.vote("v\(i)@x.no"))
        }
    }

    @Test func proofsVerifyAgainstTheCheckpoint() throws {
        let daemon = try DaemonProcess()
        let c = try BallotClient(socketPath: daemon.socketPath)
        try setUp(c, votes: 40)
        let taken = try c.request(.checkpoint(latest: false), as: CheckpointTaken.self)
        let checkpointSeq = taken.seq
        let signed = taken.checkpoint
        let size = try #require(signed["size"]?.intValue.flatMap { UInt64(exactly: $0) })
        #expect(size == checkpointSeq - 1 && signed["reason"]?.stringValue == "request")
        let root = try #require(signed["root"]?.stringValue.flatMap { Digest32(hex: $0) })
        // The key the daemon made on first start: in hello, in the checkpoint, and in FILE.pub.
        let hello = try c.request(.hello, as: HelloResult.self)
        #expect(hello.checkpointPublicKey == signed["public_key"]?.stringValue)
        let pub = try String(contentsOfFile: daemon.directory.sub("data/checkpoint.key.pub"), encoding: .utf8)
        #expect(pub.trimmingCharacters(in: .whitespacesAndNewlines) == signed["public_key"]?.stringValue)
        // Nothing new since: asking again returns the same checkpoint rather than another.
        #expect(try c.request(.checkpoint(latest: false), as: CheckpointTaken.self).seq == checkpointSeq)
        let latest = try c.request(.checkpoint(latest: true), as: LatestCheckpoint.self)
        #expect(latest.seq == checkpointSeq)
        let againstCheckpoint = try c.request(.inclusionProof(seq: 5, size: nil, checkpoint: checkpointSeq), as: InclusionProofResult.self)
        #expect(againstCheckpoint.root.hex == root.hex && againstCheckpoint.size == size)
        #expect(try c.call(.inclusionProof(seq: 5, size: nil, checkpoint: 3)).errorCode == .badRequest)
        for seq: UInt64 in [1, 17, size] {
            let p = try c.request(.inclusionProof(seq: seq, size: size, checkpoint: nil), as: InclusionProofResult.self)
            #expect(MerkleTree.verifyInclusion(leaf: p.leafHash, index: seq - 1, size: size, proof: p.path, root: root))
        }
        let k = try c.request(.consistencyProof(oldSize: 10, newSize: size), as: ConsistencyProofResult.self)
        #expect(MerkleTree.verifyConsistency(oldSize: 10, newSize: size, oldRoot: k.oldRoot, newRoot: root, proof: k.path))
        #expect(try c.call(.inclusionProof(seq: size + 5, size: nil, checkpoint: nil)).errorCode == .badRequest)
        // Written by hand: both 'size' and 'checkpoint', and neither 'seq' nor 'old_size'.
        #expect(try c.call(raw: ["op": "proof", "seq": 2, "size": 5, "checkpoint": .uint(checkpointSeq)]).errorCode == .badRequest)
        #expect(try c.call(raw: ["op": "proof"]).errorCode == .badRequest)
        daemon.terminate()
    }

    @Test func checkpointsAreTakenAtTheIntervalAndWhenTheVoteCloses() throws {
        let daemon = try DaemonProcess(environment: ["BALLOTD_CHECKPOINT_INTERVAL": "1"])
        let c = try BallotClient(socketPath: daemon.socketPath)
        try setUp(c, votes: 3)
        // The ledger grew: within a second or two the daemon signs it on its own.
        var latest: JSONValue?
        for _ in 0..<50 {
            Thread.sleep(forTimeInterval: 0.1)
            if let signed = try c.request(.checkpoint(latest: true), as: LatestCheckpoint.self).checkpoint {
                latest = signed
                break
            }
        }
        #expect(latest?["reason"]?.stringValue == "interval")
        let closed = try c.request(.electionClose("imdi-2022"), as: WriteReceipt.self)
        let after = try c.request(.events(from: closed.seq + 1, limit: 1), as: EventsResult.self).events
        #expect(after.first?["type"]?.stringValue == "checkpoint.noted")
        #expect(after.first?["data"]?["reason"]?.stringValue == "voting_closed")
        daemon.terminate()

        // The key file must be private to its owner.
        chmod(daemon.directory.sub("data/checkpoint.key"), 0o644)
        let refused = try DaemonProcess.runToExit(["--data-dir", daemon.dataDirectory, "--socket", daemon.socketPath,
                                                   "--secret-file", daemon.directory.sub("secret")], log: daemon.directory.sub("second.log"))
        #expect(refused.status != 0 && refused.output.contains("chmod 600"))
    }

    @Test func aBackupIsAConsistentLedgerWithItsManifest() throws {
        let daemon = try DaemonProcess()
        let c = try BallotClient(socketPath: daemon.socketPath)
        try setUp(c, votes: 25)
        let target = daemon.directory.sub("backup")
        let result = try c.request(.backup(directory: target), as: BackupResult.self)
        let status = try c.request(.status, as: StatusResult.self)
        #expect(result.merkleRoot.hex == status.merkleRoot.hex)
        let manifest = try JSONParser.parse(String(contentsOfFile: "\(target)/manifest.json", encoding: .utf8))
        #expect(manifest["ledger_size"]?.intValue == Int64(status.ledgerSize))
        // The copy opens on its own, read-only, and replays through every check.
        let copy = try Ledger(path: target, options: Ledger.Options(environment: .init(readOnly: true)))
        #expect(copy.root.hex == status.merkleRoot.hex)
        copy.close()
        #expect(try c.call(.backup(directory: target)).errorCode == .badRequest)      // not empty
        #expect(try c.call(.backup(directory: "relative")).errorCode == .badRequest)
        daemon.terminate()
    }

    @Test func voteEventsOfASealedElectionHideTheNominee() throws {
        let daemon = try DaemonProcess()
        let c = try BallotClient(socketPath: daemon.socketPath)
        _ = try c.call(.electionDefine(DaemonTests.liveElection("live")))
        let vote = try c.request(.vote("a@x.no", election: "live", castAt: nil), as: WriteReceipt.self)
        let events = try c.request(.events(from: vote.seq, limit: 1), as: EventsResult.self).events
        let data = try #require(events.first?["data"])
        #expect(data.members != nil, "\(data.text)")   // an object
        #expect(data["nominee"] == JSONValue.null)
        #expect(data["sealed"]?.boolValue == true)
        // Nor what would let the nominee be found by hashing each against the leaf.
        #expect(data["voter_key"] == JSONValue.null && events.first?["leaf_hash"] == JSONValue.null)
        #expect(vote.leafHash.hex.count == 64)   // the ack, to the one who cast it, keeps it
        #expect(try c.call(.subscribe(from: 1000)).errorCode == .badRequest)
        daemon.terminate()
    }

    @Test func subscribeCatchesUpThenFollowsLive() throws {
        let daemon = try DaemonProcess()
        let c = try BallotClient(socketPath: daemon.socketPath)
        try setUp(c, votes: 3)
        let sub = try BallotClient(socketPath: daemon.socketPath, timeout: 10)
        let ok = try sub.call(.subscribe(from: 2))
        #expect(ok.isOK)
        var seen: [Int] = []
        while seen.count < 8, let event = try sub.readReply() { try seen.append(Int(#require(event["seq"]?.intValue, "\(event)"))) }
        #expect(seen == Array(2...9))
        _ = try c.call(.vote("late@x.no", "bodo"))
        let live = try #require(try sub.readReply())
        #expect(live["seq"]?.intValue == 10)
        #expect(live["type"]?.stringValue == "vote.cast")
        #expect(live["data"]?["nominee"]?.stringValue == "bodo")
        // Shutdown ends the stream and the daemon still exits cleanly.
        #expect(daemon.terminate() == 0)
    }
}

extension StreamingAndProofTests {
    /// A subscriber that reads slowly while an import appends 20,000 votes sees every sequence
    /// number exactly once, in order. Before the fix a flush that made the channel writable
    /// again re-entered the stream and sent chunks of 256 events twice (1–512, 257–768, …).
    @Test func aSlowSubscriberSeesEveryEventOnceAndInOrder() throws {
        let daemon = try DaemonProcess()
        let c = try BallotClient(socketPath: daemon.socketPath)
        #expect(try c.call(.electionDefine(DaemonTests.election2022)).isOK)
        let file = daemon.directory.sub("votes.csv")
        let generated = try runTool("ballotctl", ["generate", "--election-file", Fixtures.electionFile("imdi-2022"), "--rows", "20000",
                                                  "--duplicates", "0", "--malformed", "0", "--out", file])
        #expect(generated.status == 0, "\(generated.stderr)")

        let sub = try BallotClient(socketPath: daemon.socketPath, timeout: 30)
        #expect(try sub.call(.subscribe(from: 1)).isOK)
        final class Done: @unchecked Sendable { var status: Int32 = -1 }
        let done = Done()
        let imported = DispatchSemaphore(value: 0)
        let socket = daemon.socketPath
        Thread.detachNewThread {
            done.status = (try? runTool("ballotctl", ["--socket", socket, "import", file]))?.status ?? -2
            imported.signal()
        }
        var seen: [Int] = []
        var finalSize: Int?
        while finalSize == nil || seen.last! < finalSize! {
            guard let event = try sub.readReply(), let seq = event["seq"]?.intValue else { break }
            seen.append(Int(seq))
            // Slow at first, so that the daemon's writes back up and the channel's writability
            // goes off and on while the import appends.
            if seen.count < 10_000 && seen.count % 32 == 0 { usleep(300) }
            // The import's record is its last event: the ledger's size once ballotctl is done.
            if event["type"]?.stringValue == "import.recorded" {
                imported.wait()
                finalSize = try Int(c.request(.status, as: StatusResult.self).ledgerSize)
            }
        }
        #expect(done.status == 0)
        let size = try #require(finalSize)
        #expect(size > 20_000)
        #expect(seen.count == size, "\(seen.count) lines for \(size) events")
        #expect(seen.elementsEqual(1...size), "first out of order: \(zip(seen, 1...).first { $0.0 != $0.1 }.map { "\($0.0) where \($0.1) was due" } ?? "none")")
        #expect(daemon.terminate() == 0)
    }
}

@Suite(.serialized, .timeLimit(.minutes(2))) struct MetricsTests {
    @Test func metricsCountAppendsRefusalsAndSealedPeeks() throws {
        let daemon = try DaemonProcess()
        let c = try BallotClient(socketPath: daemon.socketPath)
        _ = try c.call(.electionDefine(DaemonTests.election2022))
        for i in 0..<5 { _ = try c.call(.vote("m\(i)@x.no")) }
        _ = try c.call(.vote("m0@x.no"))
        _ = try c.call(raw: ["op": "nope"])   // an unknown op, written by hand
        _ = try c.call(.electionDefine(DaemonTests.liveElection("live")))
        _ = try c.call(.tally("live"))
        let text = try c.request(.metrics, as: MetricsResult.self).text
        func value(_ series: String) -> Double? {
            text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last!) }
        }
        #expect(value("ballotd_appended_events_total") == 14)   // 6 + 5 + 3 (the live election and its two nominees)
        #expect(value(#"ballotd_refusals_total{code="duplicate_vote"}"#) == 1)
        #expect(value(#"ballotd_refusals_total{code="unknown_op"}"#) == 1)
        #expect(value("ballotd_sealed_peeks_total") == 1)
        #expect(value("ballotd_connections") == 1)
        #expect(text.contains("ballotd_commit_duration_seconds_bucket"))
        #expect((value("ballotd_map_used_bytes") ?? 0) > 0)
        let ctl = try runTool("ballotctl", ["--socket", daemon.socketPath, "metrics"])
        #expect(ctl.status == 0 && ctl.stdout.contains("ballotd_ledger_events 14"))
        daemon.terminate()
    }
}
