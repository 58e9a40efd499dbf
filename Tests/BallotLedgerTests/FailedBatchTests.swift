import Testing
import Foundation
import TestSupport
import BallotStore
@testable import BallotLedger
@testable import BallotFormat
@testable import BallotAudit
@testable import BallotDomain

/// A transaction that fails costs its batch, never a replay (issue 17, item 2): what the batch
/// changed in memory is taken back, and memory is then exactly what the ledger stores. Each
/// test compares the writer's memory, as the failure left it, with a state loaded afresh from
/// the stored events.
@Suite struct FailedBatchTests {
    let id = Fixtures.electionID
    let other = Fixtures.slug("other-2022")

    /// Every kind of change a batch makes to memory: a new election with its nominees, votes in
    /// an election that existed and in the new one, idempotency keys, a score, an invalidation.
    func mixedBatch(votes: Range<Int>) -> [Submission] {
        var batch = Fixtures.setUpCommands(other).map { Submission($0, by: Fixtures.admin, idempotencyKey: "setup-\($0.name)-\(UUID())") }
        batch.append(Submission(.scoreJury(election: id, juror: Fixtures.slug("jury-a"), nominee: Fixtures.slug("kinn"),
                                           criterion: Fixtures.slug("results"), score: 7), by: Fixtures.juror, idempotencyKey: "score-1"))
        batch.append(Submission(.invalidateVote(election: id, vote: 10, reason: "a test"), by: Fixtures.admin))
        for i in votes {
            batch.append(Submission(Fixtures.votes(i..<i + 1)[0], by: Fixtures.importer, idempotencyKey: "row-\(i)"))
            batch.append(Submission(Fixtures.votes(i..<i + 1, election: other)[0], by: Fixtures.importer, idempotencyKey: "other-\(i)"))
        }
        return batch
    }

    /// A ledger with the fixture election and 100 votes in it (with keys), in `dir`.
    func ledgerWithVotes(in dir: TemporaryDirectory, options: Ledger.Options) throws -> Ledger {
        let ledger = try Fixtures.ledgerWithElection(in: dir, options: options)
        let outcomes = try ledger.submit((0..<100).map { Submission(Fixtures.votes($0..<$0 + 1)[0], by: Fixtures.importer, idempotencyKey: "row-\($0)") })
        precondition(outcomes.allSatisfy { $0.receipt != nil })
        return ledger
    }

    @Test func aLedgerFullBatchLeavesMemoryAsStored() throws {
        let dir = TemporaryDirectory()
        let ledger = try ledgerWithVotes(in: dir, options: Fixtures.options(mapSize: 512 << 10, maxMapSize: 512 << 10))
        let error = #expect(throws: LedgerError.self) { try ledger.submit(mixedBatch(votes: 100..<12_000)) }
        #expect(error?.isLedgerFull == true)
        try expectMemoryIsWhatIsStored(ledger)
        // The next batch goes through, and the voters and keys of the failed one are new to it.
        let outcomes = try ledger.submit(mixedBatch(votes: 100..<200))
        #expect(outcomes.allSatisfy { if case .appended = $0 { true } else { false } }, "\(outcomes.filter { $0.receipt == nil })")
        try expectMemoryIsWhatIsStored(ledger)
    }

    @Test func aBatchRunAgainAfterTheMapGrowsIsAppliedOnce() throws {
        let dir = TemporaryDirectory()
        let ledger = try ledgerWithVotes(in: dir, options: Fixtures.options(mapSize: 256 << 10, maxMapSize: 64 << 20))
        let before = try ledger.storageInfo().mapSize
        let outcomes = try ledger.submit(mixedBatch(votes: 100..<6_000))
        #expect(try ledger.storageInfo().mapSize > before)
        #expect(outcomes.allSatisfy { if case .appended = $0 { true } else { false } }, "\(outcomes.filter { $0.receipt == nil })")
        #expect(ledger.state[id]?.votesCast == 6_000)
        #expect(ledger.state[other]?.votesCast == 5_900)
        try expectMemoryIsWhatIsStored(ledger)
    }

    /// A follower's chunk whose store fills the map part way: the slices stored before it stay
    /// (verified, and the primary's), the one that failed and the one verified behind it are
    /// taken back from memory, and memory is what is stored.
    @Test func aFollowerStoreThatFailsPartWayKeepsTheSlicesStoredAndNothingMore() throws {
        let dirs = (primary: TemporaryDirectory("primary"), follower: TemporaryDirectory("follower"))
        let primary = try ledgerWithVotes(in: dirs.primary, options: Fixtures.options())
        defer { primary.close() }
        _ = try primary.submit(mixedBatch(votes: 100..<12_000))
        let chunk = try primary.reader.chunk(from: 1, maxRecords: .max, maxBytes: .max)
        let follower = try Ledger(path: dirs.follower.path, options: Fixtures.options(mapSize: 512 << 10, maxMapSize: 512 << 10))
        defer { follower.close() }
        follower.sliceRecords = 1_000
        let error = #expect(throws: LedgerError.self) { try follower.replicate(chunk, from: Ledger.Primary(ledgerID: primary.ledgerID)) }
        #expect(error?.isLedgerFull == true, "\(String(describing: error))")
        #expect(follower.size > 0 && follower.size < UInt64(chunk.count) && follower.size % 1_000 == 0, "\(follower.size)")
        #expect(follower.ledgerID == primary.ledgerID)
        #expect(try follower.reader.root(size: follower.size).root == primary.reader.root(size: follower.size).root)
        try expectMemoryIsWhatIsStored(follower)
    }

    /// A full file system (a small tmpfs, mounted when root): the commit fails with an I/O
    /// error from LMDB's write, which the store tells as `storage_full`.
    @Test(.enabled(if: getuid() == 0, "skipped: mounting a small tmpfs needs root"))
    func aFullDiskLeavesMemoryAsStored() throws {
        let dir = TemporaryDirectory("failed-batch")
        guard let mountPoint = try SmallFileSystem.mount(in: dir, megabytes: 4) else { return }
        defer { SmallFileSystem.unmount(mountPoint) }
        let ledger = try Ledger(path: "\(mountPoint)/ledger", options: Fixtures.options(mapSize: 1 << 20, maxMapSize: 64 << 20),
                                clock: ManualClock(Fixtures.now))
        defer { ledger.close() }
        _ = try ledger.submit(Fixtures.setUpCommands().map { Submission($0, by: Fixtures.admin) })
        let filler = "\(mountPoint)/filler"
        try Data(count: 3 << 20).write(to: URL(fileURLWithPath: filler))
        var failure: LedgerError?
        for start in stride(from: 0, to: 200_000, by: 5_000) {
            do {
                _ = try ledger.submit(mixedBatch(votes: start..<start + 5_000).filter {
                    if case .castVote(let e, _, _, _, _) = $0.command { e == id } else { false }
                })
            } catch let error as LedgerError {
                failure = error
                break
            }
        }
        let error = try #require(failure, "the file system never filled")
        #expect(error.isStorageFull, "\(error)")
        try expectMemoryIsWhatIsStored(ledger)
        try FileManager.default.removeItem(atPath: filler)
        #expect(try ledger.submit(Submission(Fixtures.votes(900_000..<900_001)[0], by: Fixtures.importer)).receipt != nil)
        try expectMemoryIsWhatIsStored(ledger)
    }

    /// Compares the writer's memory with a state loaded from the stored events: every election
    /// (its status, standings, jury table and series), who has voted (by count, and each stored
    /// voter), the idempotency keys, the Merkle frontier and the last timestamp.
    func expectMemoryIsWhatIsStored(_ ledger: Ledger, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(ledger.replays == 1, "the log was replayed after a failure", sourceLocation: sourceLocation)
        let memory = ledger.writer
        let stored = WriterState(try Audit.verify(ledger.reader), keySeed: IdempotencySlot.seed, ledgerID: try ledger.reader.ledgerID())
        #expect(memory.state.lastSeq == stored.state.lastSeq, sourceLocation: sourceLocation)
        #expect(memory.state.lastCheckpoint?.seq == stored.state.lastCheckpoint?.seq, sourceLocation: sourceLocation)
        #expect(memory.frontier.size == stored.frontier.size && memory.frontier.root == stored.frontier.root, sourceLocation: sourceLocation)
        #expect(memory.lastTimestamp == stored.lastTimestamp, sourceLocation: sourceLocation)
        #expect(memory.idempotency.count == stored.idempotency.count, sourceLocation: sourceLocation)
        #expect(memory.state.elections.map(\.id) == stored.state.elections.map(\.id), sourceLocation: sourceLocation)
        for (m, s) in zip(memory.state.elections, stored.state.elections) {
            #expect(m.status.json == s.status.json && m.lastSeq == s.lastSeq, "\(m.id)", sourceLocation: sourceLocation)
            #expect(Tally(m).json == Tally(s).json, sourceLocation: sourceLocation)
            #expect(Ranking(m).json == Ranking(s).json, sourceLocation: sourceLocation)
            #expect(JuryTable(m).json == JuryTable(s).json, sourceLocation: sourceLocation)
            #expect(m.series == s.series, sourceLocation: sourceLocation)
            #expect(m.votesCast == s.votesCast, sourceLocation: sourceLocation)
        }
        // Each stored vote's voter has voted, in memory too; and each key is found again.
        try ledger.reader.forEachRecord { record, _, _ in
            if case .voteCast(let vote) = record.event,
               !memory.state.hasVoted(vote.voter, in: vote.election, lookupVote: { seq in if case .voteCast(let v)? = try ledger.reader.record(seq)?.event { return v }; return nil }) {
                Issue.record("memory has lost the voter of event \(record.seq)", sourceLocation: sourceLocation)
                return false
            }
            return true
        }
    }
}

/// A tmpfs of a few megabytes, for tests of a full disk (root only).
enum SmallFileSystem {
    static func mount(in dir: TemporaryDirectory, megabytes: Int) throws -> String? {
        let mountPoint = dir.sub("fs")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", mountPoint]
        try mount.run()
        mount.waitUntilExit()
        guard mount.terminationStatus == 0 else {
            print("skipped: mount -t tmpfs failed here (\(mount.terminationStatus))")
            return nil
        }
        return mountPoint
    }

    static func unmount(_ mountPoint: String) {
        let unmount = Process()
        unmount.executableURL = URL(fileURLWithPath: "/bin/umount")
        unmount.arguments = ["-l", mountPoint]
        try? unmount.run()
        unmount.waitUntilExit()
    }
}
