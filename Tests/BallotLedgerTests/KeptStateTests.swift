import Testing
import Foundation
import TestSupport
import BallotStore
@testable import BallotLedger
@testable import BallotFormat
@testable import BallotAudit
@testable import BallotDomain
@testable import BallotCollections

/// The state kept between starts (issue 17, item 1): an open after a clean close replays
/// nothing, one after a crash replays the events after the snapshot, and a snapshot that is
/// stale, corrupt or another ledger's is found, said, and rebuilt from every event. Each test
/// ends by comparing the writer's memory with a replay of every event from nothing.
@Suite struct KeptStateTests {
    let id = Fixtures.electionID

    func tail(_ interval: UInt64 = 100_000) -> Ledger.Options {
        var options = Fixtures.options(check: .tail)
        options.snapshotInterval = interval
        return options
    }

    func open(_ dir: TemporaryDirectory, _ options: Ledger.Options? = nil) throws -> Ledger {
        try Ledger(path: dir.sub("ledger"), options: options ?? tail(), clock: ManualClock(Fixtures.now))
    }

    func votes(_ range: Range<Int>, keyed: Bool = true) -> [Submission] {
        range.map { Submission(Fixtures.votes($0..<$0 + 1)[0], by: Fixtures.importer, idempotencyKey: keyed ? "row-\($0)" : "") }
    }

    /// A ledger with the fixture election and `count` keyed votes, closed cleanly.
    func closedLedger(in dir: TemporaryDirectory, votes count: Int = 300) throws {
        let ledger = try Fixtures.ledgerWithElection(in: dir, options: tail())
        #expect(try ledger.submit(votes(0..<count)).allSatisfy { $0.receipt != nil })
        ledger.close()
    }

    @Test func aCleanReopenReplaysNothingAndKnowsEveryVoterAndKey() throws {
        let dir = TemporaryDirectory()
        try closedLedger(in: dir)
        let ledger = try open(dir)
        defer { ledger.close() }
        #expect(ledger.opening.rebuiltBecause == nil && ledger.opening.replayedEvents == 0)
        #expect(ledger.opening.keptEvents == ledger.size && ledger.size > 300)
        #expect(try ledger.state.voters.keys.isFileBacked && ledger.writer.idempotency.keyIndex.isFileBacked)
        // A voter of before is refused, a key of before returns its original, a new voter lands.
        let again = try ledger.submit(votes(5..<6, keyed: false) + votes(7..<8) + votes(300..<301))
        #expect(again[0].refusal?.code == .duplicateVote)
        if case .repeated = again[1] {} else { Issue.record("a key of before was not found: \(again[1])") }
        if case .appended = again[2] {} else { Issue.record("a new voter was refused: \(again[2])") }
        try expectMemoryIsAReplay(ledger)
    }

    /// After a crash the tables may hold more than the snapshot covers: the events after it
    /// are replayed and checked, their voters and keys (already in the tables) are not repeats.
    @Test func aCrashReplaysTheEventsAfterTheSnapshot() throws {
        let dir = TemporaryDirectory()
        let ledger = try Fixtures.ledgerWithElection(in: dir, options: tail(1_000))
        _ = try ledger.submit(votes(0..<1_200))    // a snapshot at about 1,000
        _ = try ledger.submit(votes(1_200..<1_500))
        let size = ledger.size
        ledger.closeAsIfKilled()

        let reopened = try open(dir, tail(1_000))
        defer { reopened.close() }
        #expect(reopened.opening.rebuiltBecause == nil, "\(reopened.opening.rebuiltBecause ?? "")")
        #expect(reopened.opening.keptEvents > 1_000 && reopened.opening.keptEvents < size)
        #expect(reopened.opening.replayedEvents == size - reopened.opening.keptEvents && reopened.opening.findings.isEmpty)
        let again = try reopened.submit(votes(10..<11, keyed: false) + votes(1_400..<1_401, keyed: false) + votes(1_450..<1_451))
        #expect(again[0].refusal?.code == .duplicateVote && again[1].refusal?.code == .duplicateVote)
        if case .repeated = again[2] {} else { Issue.record("a key of the replayed tail was not found: \(again[2])") }
        try expectMemoryIsAReplay(reopened)
    }

    /// A process that dies inside a batch leaves its voters and keys in the tables with no
    /// event behind them: they are no one's vote and no one's key.
    @Test func theVotersAndKeysOfABatchThatNeverCommittedAreNoOnes() throws {
        let dir = TemporaryDirectory()
        let ledger = try Fixtures.ledgerWithElection(in: dir, options: tail())
        _ = try ledger.submit(votes(0..<100))
        // What a batch of two votes leaves in the tables before its commit, then death.
        let next = ledger.state.lastSeq + 1
        let ghosts = votes(100..<102)
        for (n, ghost) in ghosts.enumerated() {
            guard case .castVote(_, _, let voter, _, _) = ghost.command else { continue }
            ledger.state.voters.add(voter.prefix, election: 0, seq: next + UInt64(n), takingOver: false)
            ledger.writer.idempotency.insert(try #require(ledger.writer.idempotency.slot(of: ghost)), seq: next + UInt64(n))
        }
        ledger.closeAsIfKilled()

        let reopened = try open(dir)
        defer { reopened.close() }
        // Events now take the ghosts' sequence numbers: other votes first, then the ghosts' own.
        let outcomes = try reopened.submit(votes(200..<202) + ghosts + votes(100..<101, keyed: false))
        #expect(outcomes[0..<4].allSatisfy { if case .appended = $0 { true } else { false } }, "\(outcomes)")
        #expect(outcomes[4].refusal?.code == .duplicateVote, "a ghost's voter, once voted, has voted")
        try expectMemoryIsAReplay(reopened)
    }

    // MARK: Forgeries: stale, corrupt, another ledger's

    /// A ledger put back from an older copy, with the state kept by the newer one.
    @Test func aStaleSnapshotIsFoundAndRebuilt() throws {
        let dir = TemporaryDirectory(), older = TemporaryDirectory()
        try closedLedger(in: dir, votes: 100)
        try copyLedger(from: dir, to: older, withState: false)
        let ledger = try open(dir)
        _ = try ledger.submit(votes(100..<200))
        ledger.close()
        try copyState(from: dir, to: older)

        let reopened = try open(older)
        defer { reopened.close() }
        let reason = try #require(reopened.opening.rebuiltBecause)
        #expect(reason.contains("stale") && reason.contains("older copy"), "\(reason)")
        #expect(reopened.opening.replayedEvents == reopened.size)
        #expect(try reopened.submit(votes(150..<151, keyed: false))[0].receipt != nil, "a voter of the newer ledger only is new here")
        try expectMemoryIsAReplay(reopened)
    }

    /// The same number of events, other events: the root over them gives it away.
    @Test func aSnapshotOfAnotherHistoryOfTheSameLengthIsStale() throws {
        let dir = TemporaryDirectory(), other = TemporaryDirectory()
        try closedLedger(in: dir, votes: 100)
        try copyLedger(from: dir, to: other, withState: true)
        let a = try open(dir), b = try open(other)
        _ = try a.submit(votes(100..<150))
        _ = try b.submit(votes(500..<550))
        a.close()
        b.close()
        try copyState(from: other, to: dir)
        let reopened = try open(dir)
        defer { reopened.close() }
        let reason = try #require(reopened.opening.rebuiltBecause)
        #expect(reason.contains("its root over"), "\(reason)")
        try expectMemoryIsAReplay(reopened)
    }

    @Test func aCorruptSnapshotIsFoundAndRebuilt() throws {
        let dir = TemporaryDirectory()
        try closedLedger(in: dir)
        let path = dir.sub("ledger/state/snapshot")
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count / 2] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let reopened = try open(dir)
        let reason = try #require(reopened.opening.rebuiltBecause)
        #expect(reason.contains("corrupt") && reason.contains("digest"), "\(reason)")
        try expectMemoryIsAReplay(reopened)
        reopened.close()

        // A table file cut short is corrupt too.
        let table = dir.sub("ledger/state/voters.0.table")
        #expect(truncate(table, 4096) == 0)
        let again = try open(dir)
        defer { again.close() }
        #expect(again.opening.rebuiltBecause?.contains("voters.0.table: it is 4096 bytes, not the") == true, "\(again.opening.rebuiltBecause ?? "")")
        try expectMemoryIsAReplay(again)
    }

    @Test func anotherLedgersSnapshotIsFoundAndRebuilt() throws {
        let dir = TemporaryDirectory(), stranger = TemporaryDirectory()
        try closedLedger(in: dir, votes: 50)
        try closedLedger(in: stranger, votes: 50)
        try copyState(from: stranger, to: dir)
        let reopened = try open(dir)
        defer { reopened.close() }
        let reason = try #require(reopened.opening.rebuiltBecause)
        #expect(reason.contains("belongs to another ledger"), "\(reason)")
        try expectMemoryIsAReplay(reopened)
    }

    /// Tables written since the last clean close live in the page cache until the kernel writes
    /// them: after the machine restarts they may have lost pages, so they are not trusted.
    @Test func aSnapshotFromAnotherBootIsTrustedOnlyIfItsTablesWereSynced() throws {
        let dir = TemporaryDirectory()
        try closedLedger(in: dir)
        let path = dir.sub("ledger/state/snapshot")
        func rewrite(synced: Bool) throws {
            var (header, image) = try KeptStateCodec.decode([UInt8](Data(contentsOf: URL(fileURLWithPath: path))))
            header.bootID = "another-boot"
            header.synced = synced
            try Data(KeptStateCodec.encode(header, image)).write(to: URL(fileURLWithPath: path))
        }
        try rewrite(synced: true)
        let trusted = try open(dir)
        #expect(trusted.opening.rebuiltBecause == nil && trusted.opening.replayedEvents == 0)
        trusted.closeAsIfKilled()   // its own open wrote a snapshot saying "not synced, this boot"
        try rewrite(synced: false)
        let rebuilt = try open(dir)
        defer { rebuilt.close() }
        #expect(rebuilt.opening.rebuiltBecause?.contains("machine restarted") == true, "\(rebuilt.opening.rebuiltBecause ?? "")")
        try expectMemoryIsAReplay(rebuilt)
    }

    /// The full check replays every event apart: a finding stops the open and leaves the kept
    /// state as it was; the default check trusts what the kept state covers.
    @Test func aFullCheckLeavesTheKeptStateWhenItFindsDamage() throws {
        let dir = TemporaryDirectory()
        try closedLedger(in: dir, votes: 100)
        try LedgerTests().tamper(dir) { txn, events in
            let seq = UInt64(50)
            var record = try #require(try txn.value(forKey: LedgerKeys.sequence(seq), in: events).map { b in
                try b.withUnsafeBytes { try RecordCodec.decode($0, seq: seq) } })
            guard case .voteCast(var vote) = record.event else { Issue.record("not a vote"); return }
            vote.channel = "sms"
            record.event = .voteCast(vote)
            try txn.put(LedgerKeys.sequence(seq), RecordCodec.encode(record), in: events)
        }
        #expect(throws: LedgerError.self) { try open(dir, Fixtures.options(check: .full)) }
        let trusting = try open(dir)
        defer { trusting.close() }
        #expect(trusting.opening.rebuiltBecause == nil && trusting.opening.replayedEvents == 0)
    }

    /// A table that doubles is a new layout: a snapshot follows at once, so that a crash after
    /// it replays a tail, not every event.
    @Test func aCrashAfterATableDoubledReplaysOnlyATail() throws {
        let dir = TemporaryDirectory()
        let ledger = try Fixtures.ledgerWithElection(in: dir, options: tail())
        let slots = ledger.state.voters.keys.slotCount
        _ = try ledger.submit(votes(0..<slots))   // past three quarters of the slots: a doubling
        #expect(ledger.state.voters.keys.slotCount > slots)
        _ = try ledger.submit(votes(slots..<slots + 10))
        ledger.closeAsIfKilled()
        let reopened = try open(dir)
        defer { reopened.close() }
        #expect(reopened.opening.rebuiltBecause == nil, "\(reopened.opening.rebuiltBecause ?? "")")
        // The snapshot is the state before the batch that doubled the table: that batch and the next.
        #expect(reopened.opening.replayedEvents == UInt64(slots) + 10)
        try expectMemoryIsAReplay(reopened)
    }

    /// A table file whose count is not one the table can hold (it is in the file's header, not
    /// under the digest) is corrupt: rebuilt, not trusted to grow.
    @Test func aTableCountTheTableCannotHoldIsCorrupt() throws {
        let dir = TemporaryDirectory()
        try closedLedger(in: dir, votes: 50)
        let fd = Foundation.open(dir.sub("ledger/state/voters.0.table"), O_RDWR)
        var huge = Int.max
        #expect(pwrite(fd, &huge, 8, 16) == 8)
        close(fd)
        let reopened = try open(dir)
        defer { reopened.close() }
        #expect(reopened.opening.rebuiltBecause?.contains("counts \(Int.max) entries") == true, "\(reopened.opening.rebuiltBecause ?? "")")
        try expectMemoryIsAReplay(reopened)
    }

    /// Whoever can write the data directory can write a snapshot with a good digest; the full
    /// check compares the kept state with its own replay of every event, and rebuilds.
    @Test func theFullCheckRebuildsAForgedSnapshot() throws {
        let dir = TemporaryDirectory()
        try closedLedger(in: dir, votes: 60)
        let path = dir.sub("ledger/state/snapshot")
        let (header, decoded) = try KeptStateCodec.decode([UInt8](Data(contentsOf: URL(fileURLWithPath: path))))
        var image = decoded
        image.elections[0].votes[0] += 1000
        try Data(KeptStateCodec.encode(header, image)).write(to: URL(fileURLWithPath: path))
        let checked = try open(dir, Fixtures.options(check: .full))
        defer { checked.close() }
        #expect(checked.opening.rebuiltBecause?.contains("disagree with a replay of every event") == true,
                "\(checked.opening.rebuiltBecause ?? "")")
        try expectMemoryIsAReplay(checked)
    }

    /// A snapshot with a good digest but counts that ask for more than it holds, or a table
    /// size that is not a power of two, is refused, never allocated.
    @Test func aSnapshotThatAsksForMoreThanItHoldsIsRefused() throws {
        let dir = TemporaryDirectory()
        try closedLedger(in: dir, votes: 20)
        var (header, image) = try KeptStateCodec.decode([UInt8](Data(contentsOf: URL(fileURLWithPath: dir.sub("ledger/state/snapshot")))))
        let layers = header.voterLayers
        header.voterLayers[layers.count - 1].size = 3 << 20
        #expect(throws: KeptStateCodec.Unreadable.self) { try KeptStateCodec.decode(KeptStateCodec.encode(header, image)) }
        header.voterLayers = layers + [LayerRecord(kind: .run, generation: 9, size: 10)]
        #expect(throws: KeptStateCodec.Unreadable.self) { try KeptStateCodec.decode(KeptStateCodec.encode(header, image)) }
        header.voterLayers = Array(repeating: layers[0], count: 65)
        #expect(throws: KeptStateCodec.Unreadable.self) { try KeptStateCodec.decode(KeptStateCodec.encode(header, image)) }
        header.voterLayers = layers
        var bytes = KeptStateCodec.encode(header, image)
        // The election count, the last u32 before the elections: claim 2^32 - 1 of them.
        let none = LedgerState.Image(lastSeq: image.lastSeq, lastCheckpoint: image.lastCheckpoint, elections: [])
        let at = KeptStateCodec.encode(header, none).count - 32 - 4
        bytes.replaceSubrange(at..<at + 4, with: [0xFF, 0xFF, 0xFF, 0xFF])
        let digest = bytes.dropLast(32).withUnsafeBytes { SHA256Digester.hash($0) }
        bytes.replaceSubrange(bytes.count - 32..<bytes.count, with: digest.withBytes { Array($0) })
        #expect(throws: KeptStateCodec.Unreadable.self) { try KeptStateCodec.decode(bytes) }
        image.elections[0].series[0].bucket += 1
        #expect(throws: DomainError.self) { try LedgerState(image: image, voters: TaggedKeySet()) }
    }

    /// Past the cap, the tables' older entries go into frozen tables and runs: a crash and a
    /// clean close both open again to a tail replay, every voter and key of before is known in
    /// whichever layer it is, and the files of layers a run replaced are gone.
    @Test func tablesPastTheirCapKeepOlderEntriesInLayers() throws {
        let dir = TemporaryDirectory()
        var options = tail(2_000)
        options.keptTableSlots = TaggedKeySet.minimumFileSlots   // 192 voters a table
        let ledger = try Fixtures.ledgerWithElection(in: dir, options: options)
        for start in stride(from: 0, to: 6_000, by: 250) {
            #expect(try ledger.submit(votes(start..<start + 250)).allSatisfy { $0.receipt != nil })
        }
        ledger.kept?.finishBuilding()
        _ = try ledger.submit(votes(6_000..<6_010))   // a snapshot with the runs in place
        ledger.closeAsIfKilled()
        var reopened = try open(dir, options)
        #expect(reopened.opening.rebuiltBecause == nil, "\(reopened.opening.rebuiltBecause ?? "")")
        #expect(reopened.opening.replayedEvents < 2_100)
        let again = try reopened.submit(votes(3..<4, keyed: false) + votes(4_500..<4_501) + votes(17..<18) + votes(6_010..<6_011))
        #expect(again[0].refusal?.code == .duplicateVote)
        if case .repeated = again[1] {} else { Issue.record("a key of before was not found: \(again[1])") }
        if case .repeated = again[2] {} else { Issue.record("a key of before was not found: \(again[2])") }
        if case .appended = again[3] {} else { Issue.record("a new voter was refused: \(again[3])") }
        try expectMemoryIsAReplay(reopened)
        reopened.close()
        reopened = try open(dir, options)
        #expect(reopened.opening.replayedEvents == 0)
        try expectMemoryIsAReplay(reopened)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.sub("ledger/state"))
        #expect(files.filter { $0.hasSuffix(".run") }.count >= 2, "\(files)")
        #expect(files.count < 40, "\(files.sorted())")
        // A full check replays every event apart and finds the kept state, layers and all, equal.
        reopened.close()
        var full = options
        full.check = .full
        let checked = try open(dir, full)
        #expect(checked.opening.rebuiltBecause == nil, "\(checked.opening.rebuiltBecause ?? "")")
        checked.close()
    }

    /// One writer at a time: a second open of a ledger in use is refused, and the first's close
    /// lets the next in.
    @Test func aSecondWriterOfTheSameLedgerIsRefused() throws {
        let dir = TemporaryDirectory()
        try closedLedger(in: dir, votes: 5)
        let first = try open(dir)
        let error = #expect(throws: LedgerError.self) { try open(dir) }
        #expect("\(error.map { "\($0)" } ?? "")".contains("another writer has this ledger open"))
        first.close()
        try open(dir).close()
    }

    // MARK: Helpers

    /// The writer's memory against a replay of every event from nothing, in tables of its own.
    func expectMemoryIsAReplay(_ ledger: Ledger, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let memory = ledger.writer
        let report = try Audit.verify(ledger.reader)
        #expect(report.findings.isEmpty, "\(report.findings)", sourceLocation: sourceLocation)
        #expect(memory.state.image == report.state.image, sourceLocation: sourceLocation)
        #expect(memory.frontier.root == report.frontier.root && memory.lastTimestamp == report.lastTimestamp, sourceLocation: sourceLocation)
        #expect(memory.idempotency.count >= report.idempotency.count && memory.idempotency.count <= report.idempotency.count + 4, sourceLocation: sourceLocation)
        let lookup: (UInt64) throws -> VoteCast? = { seq in
            if case .voteCast(let v)? = try ledger.reader.record(seq)?.event { return v }
            return nil
        }
        var voters = 0
        try ledger.reader.forEachRecord { record, _, _ in
            guard case .voteCast(let vote) = record.event else { return true }
            voters += 1
            if !memory.state.hasVoted(vote.voter, in: vote.election, lookupVote: lookup) {
                Issue.record("the voter of event \(record.seq) is not known to have voted", sourceLocation: sourceLocation)
                return false
            }
            return true
        }
        // The count is exact, but for the voters of a batch that never committed (a test leaves two).
        #expect(memory.state.voters.keys.count >= voters && memory.state.voters.keys.count <= voters + 2, sourceLocation: sourceLocation)
    }

    func copyLedger(from: TemporaryDirectory, to: TemporaryDirectory, withState: Bool) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: to.sub("ledger"), withIntermediateDirectories: true)
        for file in ["data.mdb"] { try fm.copyItem(atPath: from.sub("ledger/\(file)"), toPath: to.sub("ledger/\(file)")) }
        if withState { try copyState(from: from, to: to) }
    }

    func copyState(from: TemporaryDirectory, to: TemporaryDirectory) throws {
        let fm = FileManager.default
        try? fm.removeItem(atPath: to.sub("ledger/state"))
        try fm.copyItem(atPath: from.sub("ledger/state"), toPath: to.sub("ledger/state"))
    }
}

extension Outcome {
    var refusal: DomainError? {
        if case .refused(let e) = self { return e }
        return nil
    }
}
