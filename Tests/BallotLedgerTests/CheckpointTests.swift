import Testing
import Foundation
import TestSupport
import BallotStore
@testable import BallotLedger
@testable import BallotFormat
@testable import BallotAudit
@testable import BallotDomain

@Suite struct CheckpointTests {
    let id = Fixtures.electionID
    let key = try! CheckpointKey(seed: Array(repeating: 7, count: 32))

    func ledger(_ dir: TemporaryDirectory, key: CheckpointKey?) throws -> Ledger {
        let ledger = try Ledger(path: dir.sub("ledger"), options: Fixtures.options(), clock: ManualClock(Fixtures.now), checkpointKey: key)
        _ = try ledger.submit(Fixtures.setUpCommands().map { Submission($0, by: Fixtures.admin) })
        _ = try ledger.submit(Fixtures.votes(0..<30).map { Submission($0, by: Fixtures.importer) })
        return ledger
    }

    func checkpoint(_ ledger: Ledger, at seq: UInt64) throws -> Checkpoint {
        guard case .checkpointSigned(let c)? = try ledger.reader.record(seq)?.event else {
            Issue.record("event \(seq) is not a checkpoint")
            throw LedgerError.outOfRange("no checkpoint")
        }
        return c
    }

    @Test func aCheckpointSignsTheRootAndTheStoredNumbersOfTheEventsBeforeIt() throws {
        let dir = TemporaryDirectory()
        let ledger = try ledger(dir, key: key)
        let before = ledger.size
        let outcome = try ledger.submit(Submission(.takeCheckpoint(.request), by: Fixtures.admin))
        guard case .appended(let receipt) = outcome else { Issue.record("not appended: \(outcome)"); return }
        #expect(receipt.seq == before + 1)
        let c = try checkpoint(ledger, at: receipt.seq)
        #expect(c.size == before && c.reason == .request && c.takenAt == Fixtures.time(Fixtures.now))
        #expect(c.root == (try ledger.reader.root(size: before).root))
        #expect(c.publicKey == key.publicKey && c.hasValidSignature)
        let tally = try #require(try ledger.reader.projection(id, .tally))
        #expect(c.elections.map(\.election) == [id])
        #expect(c.elections[0].tally == tally.withUnsafeBytes { SHA256Digester.hash($0) })
        #expect(ledger.state.lastCheckpoint?.seq == receipt.seq)

        // Nothing new: the same checkpoint answers again, and nothing is appended.
        #expect(try ledger.submit(Submission(.takeCheckpoint(.request), by: Fixtures.admin)) == .repeated(receipt))
        #expect(ledger.size == receipt.seq)

        // Any other byte under the signature breaks it.
        var forged = c
        forged.size += 1
        #expect(!forged.hasValidSignature)
        #expect(c.finding(root: c.root, state: ledger.state, pinnedKey: CheckpointKey().publicKey) != nil)
    }

    @Test func closingTheVoteAndCertifyingAreCheckpointedInTheSameTransaction() throws {
        let dir = TemporaryDirectory()
        let ledger = try ledger(dir, key: key)
        let close = try ledger.submit(Submission(.closeVoting(election: id), by: Fixtures.admin))
        let closedAt = try #require(close.receipt?.seq)
        #expect(ledger.size == closedAt + 1)
        let c = try checkpoint(ledger, at: closedAt + 1)
        #expect(c.reason == .votingClosed && c.size == closedAt)

        for juror in Fixtures.jurors {
            _ = try ledger.submit(Fixtures.nominees.flatMap { n in Fixtures.criteria.map { criterion in
                Submission(.scoreJury(election: id, juror: Fixtures.slug(juror), nominee: Fixtures.slug(n), criterion: Fixtures.slug(criterion), score: 7), by: Fixtures.admin)
            } })
        }
        _ = try ledger.submit(Submission(.closeJury(election: id), by: Fixtures.admin))
        let certify = try ledger.submit(Submission(.certifyResult(election: id), by: Fixtures.admin))
        let certifiedAt = try #require(certify.receipt?.seq)
        #expect(try checkpoint(ledger, at: certifiedAt + 1).reason == .resultCertified)
        ledger.close()

        // Reopening re-checks every checkpoint: signature, root and digests.
        let reopened = try Ledger(path: dir.sub("ledger"), options: Fixtures.options(), clock: ManualClock(Fixtures.now), checkpointKey: key)
        #expect(reopened.state.lastCheckpoint?.seq == certifiedAt + 1)
    }

    @Test func withoutAKeyACheckpointIsRefusedAndNoneIsTakenOnClose() throws {
        let dir = TemporaryDirectory()
        let ledger = try ledger(dir, key: nil)
        let outcome = try ledger.submit(Submission(.takeCheckpoint(.request), by: Fixtures.admin))
        guard case .refused(let error) = outcome else { Issue.record("expected a refusal"); return }
        #expect(error.code == .badRequest)
        let size = ledger.size
        _ = try ledger.submit(Submission(.closeVoting(election: id), by: Fixtures.admin))
        #expect(ledger.size == size + 1)
    }

    @Test func aForgedCheckpointIsFoundOnOpen() throws {
        let dir = TemporaryDirectory()
        let ledger = try ledger(dir, key: key)
        let seq = try #require(try ledger.submit(Submission(.takeCheckpoint(.request), by: Fixtures.admin)).receipt?.seq)
        var record = try #require(try ledger.reader.record(seq))
        ledger.close()
        guard case .checkpointSigned(var c) = record.event else { return }
        c.signature[10] ^= 0x01
        record.event = .checkpointSigned(c)
        let env = try Environment(path: dir.sub("ledger"), options: EnvironmentOptions(mapSize: 16 << 20))
        let events = try env.openDatabase("events", create: false)
        try env.write { txn in try txn.put(LedgerKeys.sequence(seq), RecordCodec.encode(record), in: events) }
        env.close()
        let error = #expect(throws: LedgerError.self) {
            try Ledger(path: dir.sub("ledger"), options: Fixtures.options(), clock: ManualClock(Fixtures.now))
        }
        guard case .corruptRecord(let at, let reason)? = error else { Issue.record("expected corruptRecord"); return }
        #expect(at == seq && reason.contains("signature"))
    }
}
