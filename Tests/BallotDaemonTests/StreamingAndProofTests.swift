import Testing
import Foundation
import TestSupport
import BallotLedger
import BallotFormat
import BallotAudit
import BallotDomain

@Suite(.serialized, .timeLimit(.minutes(2))) struct StreamingAndProofTests {
    func setUp(_ c: BallotClient, votes: Int) throws {
        _ = try c.call(["op": "election.define", "election": DaemonTests.election2022])
        for i in 0..<votes {
            _ = try c.call(["op": "vote.cast", "election": "imdi-2022", "nominee": "kinn", "voter": "v\(i)@x.no", "cast_at": "2022-11-03T10:00:00Z"])
        }
    }

    @Test func proofsVerifyAgainstTheCheckpoint() throws {
        let daemon = try DaemonProcess()
        let c = try BallotClient(socketPath: daemon.socketPath)
        try setUp(c, votes: 40)
        let taken = try #require(try c.call(["op": "checkpoint"]).result)
        let checkpointSeq = taken["seq"] as! Int
        let signed = taken["checkpoint"] as! [String: Any]
        let size = UInt64(signed["size"] as! Int)
        #expect(size == UInt64(checkpointSeq) - 1 && signed["reason"] as? String == "request")
        let root = try #require(Digest32(hex: signed["root"] as! String))
        // The key the daemon made on first start: in hello, in the checkpoint, and in FILE.pub.
        let hello = try #require(try c.call(["op": "hello"]).result)
        #expect(hello["checkpoint_public_key"] as? String == signed["public_key"] as? String)
        let pub = try String(contentsOfFile: daemon.directory.sub("data/checkpoint.key.pub"), encoding: .utf8)
        #expect(pub.trimmingCharacters(in: .whitespacesAndNewlines) == signed["public_key"] as? String)
        // Nothing new since: asking again returns the same checkpoint rather than another.
        #expect(try c.call(["op": "checkpoint"]).result?["seq"] as? Int == checkpointSeq)
        let latest = try #require(try c.call(["op": "checkpoint", "latest": true]).result)
        #expect(latest["seq"] as? Int == checkpointSeq)
        let againstCheckpoint = try #require(try c.call(["op": "proof", "seq": 5, "checkpoint": checkpointSeq]).result)
        #expect(againstCheckpoint["root"] as? String == root.hex && againstCheckpoint["size"] as? Int == Int(size))
        #expect(try c.call(["op": "proof", "seq": 5, "checkpoint": 3]).errorCode == "bad_request")
        for seq in [1, 17, Int(size)] {
            let p = try #require(try c.call(["op": "proof", "seq": seq, "size": Int(size)]).result)
            let path = (p["path"] as! [String]).compactMap { Digest32(hex: $0) }
            let leaf = try #require(Digest32(hex: p["leaf_hash"] as! String))
            #expect(MerkleTree.verifyInclusion(leaf: leaf, index: UInt64(seq - 1), size: size, proof: path, root: root))
        }
        let k = try #require(try c.call(["op": "proof", "old_size": 10, "new_size": Int(size)]).result)
        #expect(MerkleTree.verifyConsistency(oldSize: 10, newSize: size, oldRoot: Digest32(hex: k["old_root"] as! String)!, newRoot: root,
                                            proof: (k["path"] as! [String]).compactMap { Digest32(hex: $0) }))
        #expect(try c.call(["op": "proof", "seq": Int(size) + 5]).errorCode == "bad_request")
        #expect(try c.call(["op": "proof", "seq": 2, "size": 5, "checkpoint": checkpointSeq]).errorCode == "bad_request")
        #expect(try c.call(["op": "proof"]).errorCode == "bad_request")
        daemon.terminate()
    }

    @Test func checkpointsAreTakenAtTheIntervalAndWhenTheVoteCloses() throws {
        let daemon = try DaemonProcess(environment: ["BALLOTD_CHECKPOINT_INTERVAL": "1"])
        let c = try BallotClient(socketPath: daemon.socketPath)
        try setUp(c, votes: 3)
        // The ledger grew: within a second or two the daemon signs it on its own.
        var latest: [String: Any]?
        for _ in 0..<50 where latest == nil {
            Thread.sleep(forTimeInterval: 0.1)
            latest = try c.call(["op": "checkpoint", "latest": true]).result?["checkpoint"] as? [String: Any]
        }
        #expect(latest?["reason"] as? String == "interval")
        let closed = try #require(try c.call(["op": "election.close", "election": "imdi-2022"]).result)
        let after = try #require(try c.call(["op": "events", "from": (closed["seq"] as! Int) + 1, "limit": 1]).result?["events"] as? [[String: Any]])
        #expect(after.first?["type"] as? String == "checkpoint.noted")
        #expect((after.first?["data"] as? [String: Any])?["reason"] as? String == "voting_closed")
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
        let result = try #require(try c.call(["op": "backup", "directory": target]).result)
        let status = try #require(try c.call(["op": "status"]).result)
        #expect(result["merkle_root"] as? String == status["merkle_root"] as? String)
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(target)/manifest.json"))) as? [String: Any]
        #expect(manifest?["ledger_size"] as? Int == status["ledger_size"] as? Int)
        // The copy opens on its own, read-only, and replays through every check.
        let copy = try Ledger(path: target, options: Ledger.Options(environment: .init(readOnly: true)))
        #expect(copy.root.hex == status["merkle_root"] as? String)
        copy.close()
        #expect(try c.call(["op": "backup", "directory": target]).errorCode == "bad_request")      // not empty
        #expect(try c.call(["op": "backup", "directory": "relative"]).errorCode == "bad_request")
        daemon.terminate()
    }

    @Test func voteEventsOfASealedElectionHideTheNominee() throws {
        let daemon = try DaemonProcess()
        let c = try BallotClient(socketPath: daemon.socketPath)
        _ = try c.call(["op": "election.define", "election": DaemonTests.liveElection("live")])
        let vote = try #require(try c.call(["op": "vote.cast", "election": "live", "nominee": "kinn", "voter": "a@x.no"]).result)
        let events = try #require(try c.call(["op": "events", "from": vote["seq"] as! Int, "limit": 1]).result?["events"] as? [[String: Any]])
        let data = try #require(events.first?["data"] as? [String: Any])
        #expect(data["nominee"] is NSNull)
        #expect(data["sealed"] as? Bool == true)
        // Nor what would let the nominee be found by hashing each against the leaf.
        #expect(data["voter_key"] is NSNull && events.first?["leaf_hash"] is NSNull)
        #expect(vote["leaf_hash"] is String)   // the ack, to the one who cast it, keeps it
        #expect(try c.call(["op": "subscribe", "from": 1000]).errorCode == "bad_request")
        daemon.terminate()
    }

    @Test func subscribeCatchesUpThenFollowsLive() throws {
        let daemon = try DaemonProcess()
        let c = try BallotClient(socketPath: daemon.socketPath)
        try setUp(c, votes: 3)
        let sub = try BallotClient(socketPath: daemon.socketPath, timeout: 10)
        let ok = try sub.call(["id": "s", "op": "subscribe", "from": 2])
        #expect(ok.isOK)
        var seen: [Int] = []
        while seen.count < 8, let event = try sub.readReply() { seen.append(event["seq"] as! Int) }
        #expect(seen == Array(2...9))
        _ = try c.call(["op": "vote.cast", "election": "imdi-2022", "nominee": "bodo", "voter": "late@x.no", "cast_at": "2022-11-03T10:00:00Z"])
        let live = try #require(try sub.readReply())
        #expect(live["seq"] as? Int == 10)
        #expect(live["type"] as? String == "vote.cast")
        #expect((live["data"] as? [String: Any])?["nominee"] as? String == "bodo")
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
        #expect(try c.call(["op": "election.define", "election": DaemonTests.election2022]).isOK)
        let file = daemon.directory.sub("votes.csv")
        let generated = try runTool("ballotctl", ["generate", "--election-file", Fixtures.electionFile("imdi-2022"), "--rows", "20000",
                                                  "--duplicates", "0", "--malformed", "0", "--out", file])
        #expect(generated.status == 0, "\(generated.stderr)")

        let sub = try BallotClient(socketPath: daemon.socketPath, timeout: 30)
        #expect(try sub.call(["id": "s", "op": "subscribe", "from": 1]).isOK)
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
            guard let event = try sub.readReply(), let seq = event["seq"] as? Int else { break }
            seen.append(seq)
            // Slow at first, so that the daemon's writes back up and the channel's writability
            // goes off and on while the import appends.
            if seen.count < 10_000 && seen.count % 32 == 0 { usleep(300) }
            // The import's record is its last event: the ledger's size once ballotctl is done.
            if event["type"] as? String == "import.recorded" {
                imported.wait()
                finalSize = try c.call(["op": "status"]).result?["ledger_size"] as? Int
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
        _ = try c.call(["op": "election.define", "election": DaemonTests.election2022])
        for i in 0..<5 { _ = try c.call(["op": "vote.cast", "election": "imdi-2022", "nominee": "kinn", "voter": "m\(i)@x.no", "cast_at": "2022-11-03T10:00:00Z"]) }
        _ = try c.call(["op": "vote.cast", "election": "imdi-2022", "nominee": "kinn", "voter": "m0@x.no", "cast_at": "2022-11-03T10:00:00Z"])
        _ = try c.call(["op": "nope"])
        _ = try c.call(["op": "election.define", "election": DaemonTests.liveElection("live")])
        _ = try c.call(["op": "tally", "election": "live"])
        let text = try #require(try c.call(["op": "metrics"]).result?["text"] as? String)
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
