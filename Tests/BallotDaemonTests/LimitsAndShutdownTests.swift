import Testing
import BallotDomain
import BallotLedger
import BallotFormat
import BallotAudit
import BallotStore
import Foundation
import TestSupport

/// The refusals that come from the daemon's situation rather than the request: a full ledger,
/// a shutdown under way. Both must leave nothing half-written.
@Suite(.serialized, .timeLimit(.minutes(2))) struct LimitsAndShutdownTests {
    @Test func aFullLedgerRefusesWithLedgerFullAndKeepsEverythingAcknowledged() throws {
        let dir = TemporaryDirectory("ballotd")
        let small = ["BALLOTD_MAP_SIZE": "262144", "BALLOTD_MAX_MAP_SIZE": "262144"]
        var daemon = try DaemonProcess(directory: dir, environment: small)
        var c = try BallotClient(socketPath: daemon.socketPath)
        #expect(try c.call(.electionDefine(DaemonTests.election2022)).isOK)
        var acked = 0
        var full: ReplyLine?
        for i in 0..<20_000 {
            let r = try c.call(.vote("v\(i)@x.no", "kinn", election: "imdi-2022", castAt: "2022-11-03T10:00:00Z"))
            if r.isOK { acked += 1 } else { full = r; break }
        }
        #expect(acked > 100)
        #expect(full?.errorCode == .ledgerFull, "\(String(describing: full))")
        // Reads go on, and show exactly the acknowledged votes.
        #expect(try c.document(.electionGet("imdi-2022"))["votes_cast"]?.intValue == Int64(acked))
        let metrics = try c.request(.metrics, as: MetricsResult.self).text
        #expect(metrics.contains(#"code="ledger_full""#))
        #expect(daemon.terminate() == 0)

        daemon = try DaemonProcess(directory: dir, environment: small)
        c = try BallotClient(socketPath: daemon.socketPath)
        #expect(try c.document(.electionGet("imdi-2022"))["votes_cast"]?.intValue == Int64(acked))
        daemon.terminate()
    }

    @Test func shutdownWithWritesInFlightAnswersOrRefusesEachAndLosesNoAcknowledgedOne() throws {
        let dir = TemporaryDirectory("ballotd")
        var daemon = try DaemonProcess(directory: dir)
        let admin = try BallotClient(socketPath: daemon.socketPath)
        #expect(try admin.call(.electionDefine(DaemonTests.election2022)).isOK)

        let clients = 16
        let results = Results()
        let group = DispatchGroup()
        for c in 0..<clients {
            let client = try BallotClient(socketPath: daemon.socketPath)
            group.enter()
            Thread {
                defer { group.leave() }
                for i in 0..<100_000 {
                    let voter = "c\(c)-\(i)@x.no"
                    guard let r = try? client.call(.vote(voter, "kinn", election: "imdi-2022", castAt: "2022-11-03T10:00:00Z"))
                    else { return }  // closed by the shutdown
                    if r.isOK { results.acked(voter) } else { results.refused(r.errorCode); return }
                }
            }.start()
        }
        while results.ackedCount < 500 { usleep(5_000) }
        #expect(daemon.terminate() == 0)
        group.wait()
        // A write that reached the daemon after the writer stopped was refused, not dropped.
        #expect(results.refusals.allSatisfy { $0 == .internal }, "\(results.refusals)")

        daemon = try DaemonProcess(directory: dir)
        let c = try BallotClient(socketPath: daemon.socketPath)
        let stored = try Int(c.call(.electionGet("imdi-2022")).result?["votes_cast"]?.intValue ?? -1)
        // Every acknowledged vote is there. A vote committed as the connection closed may be
        // there without its ack ever arriving, but at most one per client.
        #expect(stored >= results.ackedCount && stored <= results.ackedCount + clients)
        for voter in results.sample(50) {
            #expect(try c.call(.vote(voter, "bodo", election: "imdi-2022", castAt: "2022-11-03T10:00:00Z")).errorCode == .duplicateVote)
        }
        daemon.terminate()
    }

    /// The one verifier (`Audit.verify`): by default over the events after the kept state, in
    /// full at open, in full in the background after the default open, or its findings not
    /// fatal; a rewritten vote within the kept state is found by the full checks, and said in
    /// `status` and the metrics.
    @Test func theFullCheckRunsAtOpenOrInTheBackgroundAndStatusSaysItsVerdict() throws {
        let dir = TemporaryDirectory("ballotd")
        var daemon = try DaemonProcess(directory: dir)
        var c = try BallotClient(socketPath: daemon.socketPath)
        #expect(try c.call(.electionDefine(DaemonTests.election2022)).isOK)
        var voteSeq: UInt64 = 0
        for i in 0..<40 {
            let reply = try c.call(.vote("v\(i)@x.no", "bodo", election: "imdi-2022", castAt: "2022-11-03T10:00:00Z"))
            if i == 20 { voteSeq = reply.result?["seq"]?.intValue.map { UInt64($0) } ?? 0 }
        }
        #expect(daemon.log.contains("ledger.verify=tail"))
        #expect(try verification(c).state == .verified)
        #expect(daemon.terminate() == 0)

        daemon = try DaemonProcess(directory: dir, arguments: ["--verify", "background"])
        c = try BallotClient(socketPath: daemon.socketPath)
        let sound = try awaitVerdict(c)
        #expect(sound.state == .verified && sound.mode == "background", "\(sound)")
        let size = try c.request(.status, as: StatusResult.self).ledgerSize
        #expect(sound.events == size)
        #expect(daemon.terminate() == 0)

        // One vote rewritten for another nominee: still a vote the rules accept, but not the
        // record its Merkle nodes hash.
        let env = try Environment(path: "\(daemon.dataDirectory)/ledger", options: EnvironmentOptions(mapSize: 1 << 30))
        let events = try env.openDatabase("events", create: false)
        try env.write { txn in
            let key = LedgerKeys.sequence(voteSeq)
            var record = try #require(try txn.value(forKey: key, in: events).map { b in try b.withUnsafeBytes { try RecordCodec.decode($0, seq: voteSeq) } })
            guard case .voteCast(var vote) = record.event else { throw DaemonTestError("event \(voteSeq) is not a vote") }
            vote.nominee = Slug(unchecked: "kinn")
            record.event = .voteCast(vote)
            try txn.put(key, RecordCodec.encode(record), in: events)
        }
        env.close()

        let refused = try DaemonProcess.runToExit(["--data-dir", daemon.dataDirectory, "--socket", dir.sub("other.sock"),
                                                   "--secret-file", dir.sub("secret"), "--verify", "open"], log: dir.sub("refused.log"))
        #expect(refused.status != 0 && refused.output.contains("corrupt record"), "\(refused.output)")
        #expect(!refused.output.contains("rebuilding the kept state"), "a full check leaves the kept state as it is")

        daemon = try DaemonProcess(directory: dir, arguments: ["--verify", "background"])
        c = try BallotClient(socketPath: daemon.socketPath)
        let verdict = try awaitVerdict(c)
        #expect(verdict.state == .failed, "\(verdict)")
        #expect((verdict.firstFinding ?? "").contains("Merkle"), "\(verdict)")
        let metrics = try c.request(.metrics, as: MetricsResult.self).text
        #expect((MetricsEndpointTests.samples(metrics)["ballotd_verification_findings"] ?? 0) >= 1, "\(metrics)")
        // Meanwhile it serves, and says so in its log.
        #expect(try c.call(.electionGet("imdi-2022")).isOK)
        #expect(daemon.log.contains("background verification found the ledger unsound"))
        #expect(daemon.terminate() == 0)

        daemon = try DaemonProcess(directory: dir, arguments: ["--no-verify"])
        c = try BallotClient(socketPath: daemon.socketPath)
        #expect(try verification(c).state == .off)
        daemon.terminate()
    }

    private func verification(_ c: BallotClient) throws -> VerificationReport {
        try c.request(.status, as: StatusResult.self).verification
    }

    private func awaitVerdict(_ c: BallotClient) throws -> VerificationReport {
        for _ in 0..<200 {
            let v = try verification(c)
            if v.state != .running { return v }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return try verification(c)
    }
}

/// What the clients of the shutdown test saw, shared between their threads.
private final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private var voters: [String] = []
    private(set) var refusals: [ErrorCode?] = []
    func acked(_ voter: String) { lock.withLock { voters.append(voter) } }
    func refused(_ code: ErrorCode?) { lock.withLock { refusals.append(code) } }
    var ackedCount: Int { lock.withLock { voters.count } }
    func sample(_ n: Int) -> [String] { lock.withLock { Array(voters.shuffled().prefix(n)) } }
}
