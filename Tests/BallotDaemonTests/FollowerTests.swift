import Testing
import Foundation
import TestSupport
import BallotStore
import BallotLedger
import BallotFormat
import BallotAudit
import BallotDomain

/// Followers end to end: two real `ballotd`s, the follower on the primary's socket
/// (`--follow`), each with its own data directory.
@Suite(.serialized, .timeLimit(.minutes(3))) struct FollowerTests {
    static func vote(_ c: BallotClient, _ i: Int, nominee: NomineeID = "kinn") throws {
        let reply = try c.call(.vote("v\(i)@x.no", nominee))
        guard reply.isOK else { throw DaemonTestError("vote \(i): \(reply)") }
    }

    static func status(_ daemon: DaemonProcess) throws -> StatusResult {
        try BallotClient(socketPath: daemon.socketPath).request(.status, as: StatusResult.self)
    }

    /// The follower's report once it has stopped, or after 10 s, whichever comes first.
    static func untilStopped(_ follower: DaemonProcess) throws -> FollowerReport? {
        var following: FollowerReport?
        for _ in 0..<200 {
            following = try status(follower).follower
            if following?.state == "stopped" { break }
            usleep(50_000)
        }
        return following
    }

    /// Waits until the follower holds what the primary holds, and returns that size.
    @discardableResult
    static func caughtUp(_ follower: DaemonProcess, _ primary: DaemonProcess, timeout: Double = 30) throws -> Int {
        let deadline = Date().addingTimeInterval(timeout)
        var last: (Int, Int) = (-1, -1)
        while Date() < deadline {
            let want = try Int(status(primary).ledgerSize)
            let have = try Int(status(follower).ledgerSize)
            if want == have { return have }
            last = (have, want)
            usleep(50_000)
        }
        throw DaemonTestError("the follower holds \(last.0) events, the primary \(last.1), after \(timeout) s: \(follower.log.suffix(3000))")
    }

    static func follow(_ primary: DaemonProcess, directory: TemporaryDirectory = TemporaryDirectory("follower"), key: String? = nil) throws -> DaemonProcess {
        try DaemonProcess(directory: directory, arguments: ["--follow", "unix://\(primary.socketPath)"] + (key.map { ["--follow-checkpoint-key", $0] } ?? []))
    }

    @Test func aFollowerStoresEveryRecordVerifiedAndServesReads() throws {
        let primary = try DaemonProcess(environment: ["BALLOTD_CHECKPOINT_INTERVAL": "1"])
        let c = try BallotClient(socketPath: primary.socketPath)
        _ = try c.call(.electionDefine(DaemonTests.election2022))
        for i in 0..<150 { try Self.vote(c, i) }
        _ = try c.call(.checkpoint(latest: false))
        let key = try #require(try c.request(.hello, as: HelloResult.self).checkpointPublicKey)

        // It starts on an empty directory while the primary keeps taking votes.
        let followerDir = TemporaryDirectory("follower")
        var follower = try Self.follow(primary, directory: followerDir, key: key)
        for i in 150..<400 {
            try Self.vote(c, i, nominee: i % 3 == 0 ? "bodo" : "kinn")
            if i % 100 == 0 { _ = try c.call(.checkpoint(latest: false)) }
        }
        try Self.caughtUp(follower, primary)
        let f = try BallotClient(socketPath: follower.socketPath)
        let (ps, fs) = (try Self.status(primary), try Self.status(follower))
        #expect(ps.merkleRoot.hex == fs.merkleRoot.hex)
        #expect(ps.ledgerID == fs.ledgerID)
        let following = try #require(fs.follower)
        #expect(following.state == "streaming" && following.primary == "unix://\(primary.socketPath)")
        #expect(following.lagEvents == 0 && following.primaryLedgerSize == ps.ledgerSize)

        // The same root at every size a checkpoint signs.
        let events = try c.request(.events(from: 1, limit: 10_000), as: EventsResult.self).events
        let signedSizes = events.compactMap { e -> UInt64? in
            guard (e["type"]?.stringValue ?? "").hasPrefix("checkpoint.") else { return nil }
            return e["data"]?["size"]?.intValue.flatMap { UInt64(exactly: $0) }
        }
        #expect(signedSizes.count >= 3, "\(signedSizes)")
        for size in signedSizes where size > 0 {
            let p = try c.request(.inclusionProof(seq: 1, size: size, checkpoint: nil), as: InclusionProofResult.self)
            let q = try f.request(.inclusionProof(seq: 1, size: size, checkpoint: nil), as: InclusionProofResult.self)
            #expect(p.root.hex == q.root.hex, "size \(size)")
        }
        // Every event reads the same, and the jury's and the public's reads are served.
        // (The primary takes a checkpoint every second, so the follower may hold one more by now.)
        let followed = try f.request(.events(from: 1, limit: 10_000), as: EventsResult.self).events
        #expect(followed.count >= events.count)
        #expect(followed.prefix(events.count).map { $0["leaf_hash"]?.stringValue } == events.map { $0["leaf_hash"]?.stringValue })
        #expect(try f.document(.electionGet("imdi-2022"))["votes_cast"]?.intValue == 400)

        // Writes are refused, naming the primary.
        let refused = try f.call(.vote("late@x.no", castAt: nil))
        #expect(refused.errorCode == .readOnly)
        let message = refused.refusal?.message
        #expect(message?.contains(primary.socketPath) == true, "\(refused)")
        #expect(try f.call(.checkpoint(latest: false)).errorCode == .readOnly)

        // A subscription on the follower sees a vote cast on the primary.
        let size = try Self.status(follower).ledgerSize
        let watcher = try BallotClient(socketPath: follower.socketPath, timeout: 20)
        _ = try watcher.call(.subscribe(from: size + 1))
        try Self.vote(c, 400)
        let seen = try #require(try watcher.readReply())
        #expect(seen["seq"]?.intValue == Int64(size + 1) && seen["type"]?.stringValue == "vote.cast", "\(seen)")

        // Killed, it resumes from what it stored; so does it when the primary restarts.
        follower.kill()
        for i in 401..<450 { try Self.vote(c, i) }
        follower = try Self.follow(primary, directory: followerDir, key: key)
        try Self.caughtUp(follower, primary)
        primary.terminate()
        let restarted = try DaemonProcess(directory: primary.directory)
        let c2 = try BallotClient(socketPath: restarted.socketPath)
        for i in 450..<470 { try Self.vote(c2, i) }
        try Self.caughtUp(follower, restarted)
        #expect(try Self.status(restarted).merkleRoot.hex == Self.status(follower).merkleRoot.hex)
        let finalSize = try Self.status(follower).ledgerSize
        #expect(follower.terminate() == 0)
        #expect(restarted.terminate() == 0)

        // What it stored is what an auditor accepts, under the primary's key.
        let reader = try LedgerReader.openReadOnly(path: followerDir.sub("data/ledger"))
        let report = try Audit.verify(reader, pinnedKey: Digest32(hex: key))
        #expect(report.findings.isEmpty, "\(report.findings)")
        #expect(report.events == finalSize)
    }

    /// A record the rules refuse (a voter's second vote, written into the primary's ledger
    /// behind its back) stops replication: nothing of its chunk is stored, the follower says
    /// why, and it keeps serving what it verified.
    @Test func aRecordThatDoesNotVerifyStopsReplicationAndIsNeverStored() throws {
        let primary = try DaemonProcess()
        let c = try BallotClient(socketPath: primary.socketPath)
        _ = try c.call(.electionDefine(DaemonTests.election2022))
        for i in 0..<30 { try Self.vote(c, i) }
        let followerDir = TemporaryDirectory("follower")
        var follower = try Self.follow(primary, directory: followerDir)
        let verified = try Self.caughtUp(follower, primary)
        #expect(follower.terminate() == 0)
        for i in 30..<60 { try Self.vote(c, i) }
        #expect(primary.terminate() == 0)

        // Event `bad` becomes a second vote by the voter of the event before it.
        let bad = UInt64(verified + 10)
        let env = try Environment(path: primary.directory.sub("data/ledger"), options: EnvironmentOptions(mapSize: 1 << 30))
        let events = try env.openDatabase("events", create: false)
        let before = try #require(try LedgerReader.openReadOnly(path: primary.directory.sub("data/ledger")).record(bad - 1))
        var forged = before
        forged.seq = bad
        forged.idempotencyKey = "forged"
        try env.write { txn in
            try txn.put(withUnsafeBytes(of: bad.bigEndian) { Array($0) }, RecordCodec.encode(forged), in: events)
        }
        env.close()
        let tampered = try DaemonProcess(directory: primary.directory, arguments: ["--verify", "off"])
        follower = try Self.follow(tampered, directory: followerDir)
        let following = try Self.untilStopped(follower)
        #expect(following?.state == "stopped", "\(String(describing: following))")
        let why = following?.stoppedBecause ?? ""
        #expect(why.contains("event \(bad)") && why.contains("the rules refuse"), "\(why)")
        // Nothing of the chunk that held it: the follower holds what it verified before.
        #expect(try Self.status(follower).ledgerSize == UInt64(verified))
        #expect(follower.log.contains("critical") && follower.log.contains("replication stopped"))
        #expect(try BallotClient(socketPath: follower.socketPath).document(.electionGet("imdi-2022"))["votes_cast"]?.intValue == 30)
        let metrics = try BallotClient(socketPath: follower.socketPath).request(.metrics, as: MetricsResult.self).text
        #expect(metrics.contains("ballotd_follower_stopped 1"), "\(metrics.split(separator: "\n").filter { $0.contains("follower") })")
        #expect(follower.terminate() == 0)
        tampered.terminate()
    }

    /// A primary put back to an older copy of its ledger, which then takes other votes, has a
    /// history the follower did not verify: the follower stops rather than build on it, and
    /// says why. (Asked from its own size, the primary's root over those events differs.)
    @Test func aPrimaryPutBackToAnOlderCopyStopsItsFollower() throws {
        let primary = try DaemonProcess()
        let c = try BallotClient(socketPath: primary.socketPath)
        _ = try c.call(.electionDefine(DaemonTests.election2022))
        for i in 0..<20 { try Self.vote(c, i) }
        let copy = primary.directory.sub("older-copy")
        #expect(try c.call(.backup(directory: copy)).isOK)
        for i in 20..<40 { try Self.vote(c, i) }
        let followerDir = TemporaryDirectory("follower")
        var follower = try Self.follow(primary, directory: followerDir)
        let verified = try Self.caughtUp(follower, primary)
        #expect(follower.terminate() == 0)
        #expect(primary.terminate() == 0)

        // The older copy goes back in place, and other votes make it longer than the follower.
        let ledger = primary.directory.sub("data/ledger")
        try FileManager.default.removeItem(atPath: ledger)
        try FileManager.default.createDirectory(atPath: ledger, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(copy)/data.mdb", toPath: "\(ledger)/data.mdb")
        let restored = try DaemonProcess(directory: primary.directory)
        let c2 = try BallotClient(socketPath: restored.socketPath)
        for i in 100..<140 { try Self.vote(c2, i) }
        #expect(try Self.status(restored).ledgerSize > UInt64(verified))

        follower = try Self.follow(restored, directory: followerDir)
        let following = try Self.untilStopped(follower)
        let why = following?.stoppedBecause ?? ""
        #expect(following?.state == "stopped" && why.contains("not the one this follower verified"), "\(String(describing: following))")
        #expect(try Self.status(follower).ledgerSize == UInt64(verified))
        #expect(follower.terminate() == 0)
        restored.terminate()
    }
}
