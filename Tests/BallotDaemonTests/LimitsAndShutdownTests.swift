import Testing
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
        #expect(try c.call(["op": "election.define", "election": DaemonTests.election2022]).isOK)
        var acked = 0
        var full: [String: Any]?
        for i in 0..<20_000 {
            let r = try c.call(["op": "vote.cast", "election": "imdi-2022", "nominee": "kinn", "voter": "v\(i)@x.no",
                                "cast_at": "2022-11-03T10:00:00Z"])
            if r.isOK { acked += 1 } else { full = r; break }
        }
        #expect(acked > 100)
        #expect(full?.errorCode == "ledger_full", "\(String(describing: full))")
        // Reads go on, and show exactly the acknowledged votes.
        #expect(try c.call(["op": "election.get", "election": "imdi-2022"]).result?["votes_cast"] as? Int == acked)
        let metrics = try c.call(["op": "metrics"]).result?["text"] as? String ?? ""
        #expect(metrics.contains(#"code="ledger_full""#))
        #expect(daemon.terminate() == 0)

        daemon = try DaemonProcess(directory: dir, environment: small)
        c = try BallotClient(socketPath: daemon.socketPath)
        #expect(try c.call(["op": "election.get", "election": "imdi-2022"]).result?["votes_cast"] as? Int == acked)
        daemon.terminate()
    }

    @Test func shutdownWithWritesInFlightAnswersOrRefusesEachAndLosesNoAcknowledgedOne() throws {
        let dir = TemporaryDirectory("ballotd")
        var daemon = try DaemonProcess(directory: dir)
        let admin = try BallotClient(socketPath: daemon.socketPath)
        #expect(try admin.call(["op": "election.define", "election": DaemonTests.election2022]).isOK)

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
                    guard let r = try? client.call(["op": "vote.cast", "election": "imdi-2022", "nominee": "kinn", "voter": voter,
                                                    "cast_at": "2022-11-03T10:00:00Z"]) else { return }  // closed by the shutdown
                    if r.isOK { results.acked(voter) } else { results.refused(r.errorCode ?? "?"); return }
                }
            }.start()
        }
        while results.ackedCount < 500 { usleep(5_000) }
        #expect(daemon.terminate() == 0)
        group.wait()
        // A write that reached the daemon after the writer stopped was refused, not dropped.
        #expect(results.refusals.allSatisfy { $0 == "internal" }, "\(results.refusals)")

        daemon = try DaemonProcess(directory: dir)
        let c = try BallotClient(socketPath: daemon.socketPath)
        let stored = try c.call(["op": "election.get", "election": "imdi-2022"]).result?["votes_cast"] as? Int ?? -1
        // Every acknowledged vote is there. A vote committed as the connection closed may be
        // there without its ack ever arriving, but at most one per client.
        #expect(stored >= results.ackedCount && stored <= results.ackedCount + clients)
        for voter in results.sample(50) {
            #expect(try c.call(["op": "vote.cast", "election": "imdi-2022", "nominee": "bodo", "voter": voter,
                                "cast_at": "2022-11-03T10:00:00Z"]).errorCode == "duplicate_vote")
        }
        daemon.terminate()
    }

    @Test func noVerifySkipsTheCheckOnOpenAndSaysSo() throws {
        let dir = TemporaryDirectory("ballotd")
        var daemon = try DaemonProcess(directory: dir)
        let c = try BallotClient(socketPath: daemon.socketPath)
        #expect(try c.call(["op": "election.define", "election": DaemonTests.election2022]).isOK)
        #expect(daemon.log.contains("ledger.verified=true"))
        #expect(daemon.terminate() == 0)
        daemon = try DaemonProcess(directory: dir, arguments: ["--no-verify"])
        #expect(daemon.log.contains("ledger.verified=false"))
        #expect(try BallotClient(socketPath: daemon.socketPath).call(["op": "election.get", "election": "imdi-2022"]).isOK)
        daemon.terminate()
    }
}

/// What the clients of the shutdown test saw, shared between their threads.
private final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private var voters: [String] = []
    private(set) var refusals: [String] = []
    func acked(_ voter: String) { lock.withLock { voters.append(voter) } }
    func refused(_ code: String) { lock.withLock { refusals.append(code) } }
    var ackedCount: Int { lock.withLock { voters.count } }
    func sample(_ n: Int) -> [String] { lock.withLock { Array(voters.shuffled().prefix(n)) } }
}
