import Testing
import Foundation
import TestSupport
import BallotLedger
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
        let head = try #require(try c.call(["op": "checkpoint"]).result)
        let size = UInt64(head["ledger_size"] as! Int)
        let root = try #require(Digest32(hex: head["merkle_root"] as! String))
        for seq in [1, 17, Int(size)] {
            let p = try #require(try c.call(["op": "proof", "seq": seq]).result)
            let path = (p["path"] as! [String]).compactMap { Digest32(hex: $0) }
            let leaf = try #require(Digest32(hex: p["leaf_hash"] as! String))
            #expect(MerkleTree.verifyInclusion(leaf: leaf, index: UInt64(seq - 1), size: size, proof: path, root: root))
        }
        let k = try #require(try c.call(["op": "proof", "old_size": 10, "new_size": Int(size)]).result)
        #expect(MerkleTree.verifyConsistency(oldSize: 10, newSize: size, oldRoot: Digest32(hex: k["old_root"] as! String)!, newRoot: root,
                                            proof: (k["path"] as! [String]).compactMap { Digest32(hex: $0) }))
        #expect(try c.call(["op": "proof", "seq": Int(size) + 5]).errorCode == "bad_request")
        #expect(try c.call(["op": "proof"]).errorCode == "bad_request")
        daemon.terminate()
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
