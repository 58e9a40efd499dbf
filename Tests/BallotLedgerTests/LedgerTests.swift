import Testing
import Foundation
import TestSupport
import BallotStore
@testable import BallotLedger
@testable import BallotFormat
@testable import BallotAudit
@testable import BallotDomain

@Suite struct LedgerTests {
    let id = Fixtures.electionID

    func cast(_ voter: Int, _ nominee: String = "kinn", key: String = "", castAt: Timestamp? = nil) -> Submission {
        Submission(.castVote(election: id, nominee: Fixtures.slug(nominee), voter: Fixtures.voter(voter), castAt: castAt, channel: "web"),
                   by: Fixtures.importer, idempotencyKey: key)
    }

    @Test func appendsInSequenceWithReceiptsAndProjections() throws {
        let dir = TemporaryDirectory()
        let ledger = try Fixtures.ledgerWithElection(in: dir)
        let setUp = ledger.size
        let outcomes = try ledger.submit((0..<10).map { cast($0, $0 % 2 == 0 ? "kinn" : "bodo") })
        #expect(outcomes.map { $0.receipt!.seq } == Array((setUp + 1)...(setUp + 10)))
        for o in outcomes {
            let stored = try ledger.reader.leafHash(o.receipt!.seq)
            #expect(stored == o.receipt!.leafHash)
        }
        let tally = try #require(try ledger.reader.projection(id, .tally))
        #expect(tally == Tally(ledger.state[id]!).json.serialized())
        #expect(String(decoding: tally, as: UTF8.self).contains("\"valid_votes\":10"))
        // What the daemon publishes without reading back is what was stored.
        #expect(ledger.standingsWritten[id]?.tally == tally)
        #expect(ledger.standingsWritten[id]?.ranking == (try ledger.reader.projection(id, .ranking)))
        #expect(ledger.standingsWritten.count == 1)
        #expect(try ledger.reader.root().root == ledger.root)
        #expect(try ledger.reader.series(id).count >= 1)
    }

    @Test func aRefusedCommandWritesNothing() throws {
        let dir = TemporaryDirectory()
        let ledger = try Fixtures.ledgerWithElection(in: dir)
        _ = try ledger.submit(cast(1))
        let before = (size: ledger.size, root: ledger.root, txn: try ledger.storageInfo().lastTransactionID,
                      projections: try ledger.reader.storedProjections())
        let refused: [Submission] = [
            cast(1, "bodo"),                                                        // duplicate_vote
            cast(2, "oslo"),                                                        // unknown_nominee
            cast(3, castAt: Fixtures.time("2022-10-01T00:00:00Z")),                 // outside_window
            Submission(.castVote(election: Fixtures.slug("nope"), nominee: Fixtures.slug("kinn"), voter: Fixtures.voter(4), castAt: nil, channel: ""), by: Fixtures.importer),
            Submission(.addNominee(election: id, nomination: Fixtures.nomination("tonsberg", direct: 40)), by: Fixtures.admin),
            Submission(.scoreJury(election: id, juror: Fixtures.slug("jury-a"), nominee: Fixtures.slug("kinn"), criterion: Fixtures.slug("results"), score: 42), by: Fixtures.juror),
        ]
        let outcomes = try ledger.submit(refused)
        let codes = outcomes.map { o -> ErrorCode? in if case .refused(let e) = o { e.code } else { nil } }
        #expect(codes == [.duplicateVote, .unknownNominee, .outsideWindow, .unknownElection, .nominationsClosed, .scoreOutOfRange])
        #expect(ledger.size == before.size)
        #expect(ledger.root == before.root)
        #expect(try ledger.storageInfo().lastTransactionID == before.txn)
        #expect(try ledger.reader.storedProjections() == before.projections)
    }

    @Test func aBatchMixesAcceptedAndRefusedCommandsInOrder() throws {
        let dir = TemporaryDirectory()
        let ledger = try Fixtures.ledgerWithElection(in: dir)
        let outcomes = try ledger.submit([cast(1), cast(1, "bodo"), cast(2, "bodo")])
        #expect(outcomes[0].receipt != nil)
        #expect(outcomes[1] == .refused(DomainError(.duplicateVote, "this voter has already voted in '\(id)'; one vote per voter")))
        #expect(outcomes[2].receipt!.seq == outcomes[0].receipt!.seq + 1)
    }

    @Test func theSameKeyAndContentReturnsTheOriginalAndAppendsNothing() throws {
        let dir = TemporaryDirectory()
        let ledger = try Fixtures.ledgerWithElection(in: dir)
        let first = try ledger.submit(cast(1, key: "vote-1", castAt: Fixtures.time("2022-11-03T10:00:00Z")))
        let size = ledger.size
        let again = try ledger.submit(cast(1, key: "vote-1", castAt: Fixtures.time("2022-11-03T10:00:00Z")))
        #expect(again == .repeated(first.receipt!))
        #expect(ledger.size == size)
        // Reopening rebuilds the key index from the log.
        ledger.close()
        let reopened = try Ledger(path: dir.sub("ledger"), options: Fixtures.options(), clock: ManualClock(Fixtures.now))
        #expect(try reopened.submit(cast(1, key: "vote-1", castAt: Fixtures.time("2022-11-03T10:00:00Z"))) == .repeated(first.receipt!))
    }

    /// Keys are scoped by the kind of command (issue 18, defect 6): a juror who sends a score
    /// with an import row's predictable `vote_id` as its key no longer vetoes that row. Within
    /// votes a key is still one vote. Open and the audit rebuild the same scopes.
    @Test func aKeyOfAnotherKindOfCommandCannotVetoAVote() throws {
        let dir = TemporaryDirectory()
        let ledger = try Fixtures.ledgerWithElection(in: dir)
        let score = Submission(.scoreJury(election: id, juror: Fixtures.slug("jury-a"), nominee: Fixtures.slug("kinn"),
                                          criterion: Fixtures.slug("results"), score: 5), by: Fixtures.juror, idempotencyKey: "web-5-1")
        guard case .appended = try ledger.submit(score) else { Issue.record("the score was not appended"); return }
        guard case .appended(let vote) = try ledger.submit(cast(1, key: "web-5-1")) else { Issue.record("the vote was vetoed"); return }
        guard case .repeated = try ledger.submit(cast(1, key: "web-5-1")) else { Issue.record("the vote was not a repeat"); return }
        guard case .refused(let conflict) = try ledger.submit(cast(2, key: "web-5-1")) else { Issue.record("no conflict"); return }
        #expect(conflict.code == .conflict)
        guard case .repeated = try ledger.submit(score) else { Issue.record("the score was not a repeat"); return }
        ledger.close()
        // Reopened (the index rebuilt from the records), the scopes are the same.
        let reopened = try Ledger(path: dir.sub("ledger"), options: Fixtures.options(), clock: ManualClock(Fixtures.now))
        guard case .repeated(let receipt) = try reopened.submit(cast(1, key: "web-5-1")) else { Issue.record("not a repeat after reopening"); return }
        #expect(receipt.seq == vote.seq)
        #expect(try Audit.verify(reopened.reader).exitCode == 0)
        reopened.close()
    }

    @Test func theSameKeyWithOtherContentIsAConflict() throws {
        let dir = TemporaryDirectory()
        let ledger = try Fixtures.ledgerWithElection(in: dir)
        let first = try ledger.submit(cast(1, key: "vote-1"))
        let outcome = try ledger.submit(cast(1, "bodo", key: "vote-1"))
        guard case .refused(let e) = outcome else { Issue.record("expected conflict, got \(outcome)"); return }
        #expect(e.code == .conflict)
        #expect(e.message.contains("event \(first.receipt!.seq)"))
        // Keys are global: the same key sent with another election is a conflict too.
        _ = try ledger.submit(Fixtures.setUpCommands(Fixtures.slug("other")).map { Submission($0, by: Fixtures.admin) })
        let other = try ledger.submit(Submission(.castVote(election: Fixtures.slug("other"), nominee: Fixtures.slug("kinn"), voter: Fixtures.voter(1), castAt: nil, channel: "web"), by: Fixtures.importer, idempotencyKey: "vote-1"))
        guard case .refused(let again) = other else { Issue.record("expected conflict, got \(other)"); return }
        #expect(again.code == .conflict)
    }

    @Test func stateAndProjectionsSurviveAReopen() throws {
        let dir = TemporaryDirectory()
        let clock = ManualClock(Fixtures.now)
        let ledger = try Fixtures.ledgerWithElection(in: dir, clock: clock)
        _ = try ledger.submit(Fixtures.votes(0..<500).map { Submission($0, by: Fixtures.importer) })
        let root = ledger.root
        let tally = Tally(ledger.state[id]!).json
        ledger.close()
        let reopened = try Ledger(path: dir.sub("ledger"), options: Fixtures.options(), clock: clock)
        #expect(reopened.root == root)
        #expect(Tally(reopened.state[id]!).json == tally)
        #expect(try reopened.submit(Submission(Fixtures.votes(0..<1)[0], by: Fixtures.importer)).receipt == nil)
    }

    @Test func timestampsNeverGoBackwards() throws {
        let dir = TemporaryDirectory()
        let clock = ManualClock(Fixtures.now)
        let ledger = try Fixtures.ledgerWithElection(in: dir, clock: clock)
        clock.set("2022-11-09T12:00:00Z")
        let r = try ledger.submit(cast(1)).receipt!
        #expect(try ledger.reader.record(r.seq)?.timestamp == Fixtures.time(Fixtures.now))
    }

    @Test func aFullMapGrowsAndTheBatchIsAppliedOnce() throws {
        let dir = TemporaryDirectory()
        let ledger = try Fixtures.ledgerWithElection(in: dir, options: Fixtures.options(mapSize: 256 << 10, maxMapSize: 64 << 20))
        let before = try ledger.storageInfo().mapSize
        let outcomes = try ledger.submit(Fixtures.votes(0..<5000).map { Submission($0, by: Fixtures.importer) })
        #expect(outcomes.allSatisfy { $0.receipt != nil })
        #expect(try ledger.storageInfo().mapSize > before)
        #expect(ledger.state[id]?.validVotes == 5000)
        #expect(try ledger.reader.size() == ledger.size)
        let tally = try #require(try ledger.reader.projection(id, .tally))
        #expect(String(decoding: tally, as: UTF8.self).contains("\"valid_votes\":5000"))
    }

    @Test func aFullMapKeepsTheIdempotencyIndexExact() throws {
        let dir = TemporaryDirectory()
        let ledger = try Fixtures.ledgerWithElection(in: dir, options: Fixtures.options(mapSize: 256 << 10, maxMapSize: 64 << 20))
        let votes = Fixtures.votes(0..<4000)
        let batch = votes.enumerated().map { Submission($1, by: Fixtures.importer, idempotencyKey: "row-\($0)") }
        let first = try ledger.submit(batch)
        #expect(first.allSatisfy { if case .appended = $0 { true } else { false } })
        // The same rows again, after the map grew mid-batch and the state was replayed: all repeats.
        let again = try ledger.submit(batch)
        #expect(zip(first, again).allSatisfy { a, b in b == .repeated(a.receipt!) })
    }

    @Test func aKeyRepeatedWithinOneBatchIsARepeat() throws {
        let dir = TemporaryDirectory()
        let ledger = try Fixtures.ledgerWithElection(in: dir)
        let outcomes = try ledger.submit([cast(1, key: "k"), cast(1, key: "k"), cast(2, key: "k")])
        #expect(outcomes[1] == .repeated(outcomes[0].receipt!))
        guard case .refused(let e) = outcomes[2] else { Issue.record("expected conflict"); return }
        #expect(e.code == .conflict)
    }

    @Test func certificationSealsTheElectionAndSurvivesAReopen() throws {
        let dir = TemporaryDirectory()
        let clock = ManualClock(Fixtures.now)
        let ledger = try Fixtures.ledgerWithElection(in: dir, clock: clock)
        let ineligible = try ledger.submit(Submission(.addNominee(election: id, nomination: Fixtures.nomination("tonsberg", direct: 49)), by: Fixtures.admin))
        #expect(ineligible == .refused(DomainError(.notEligible, "Tonsberg ('tonsberg') shows goal attainment of 49.0 % directly after the programme and 55.0 % one year after; the entry criterion for 'award-2022' is at least 50.0 % and 50.0 %")))
        _ = try ledger.submit((0..<10).map { cast($0, $0 % 3 == 0 ? "bodo" : "kinn") })
        var scores: [Submission] = []
        for juror in Fixtures.jurors {
            for nominee in Fixtures.nominees {
                for criterion in Fixtures.criteria {
                    scores.append(Submission(.scoreJury(election: id, juror: Fixtures.slug(juror), nominee: Fixtures.slug(nominee), criterion: Fixtures.slug(criterion), score: nominee == "kinn" ? 9 : 5), by: Fixtures.juror))
                }
            }
        }
        #expect(try ledger.submit(scores).allSatisfy { $0.receipt != nil })
        #expect(try ledger.submit(Submission(.closeVoting(election: id), by: Fixtures.admin)).receipt != nil)
        #expect(try ledger.submit(Submission(.closeJury(election: id), by: Fixtures.admin)).receipt != nil)
        clock.set("2022-11-17T10:00:00Z")
        #expect(try ledger.submit(Submission(.certifyResult(election: id), by: Fixtures.admin)).receipt != nil)
        guard case .refused(let sealed) = try ledger.submit(cast(99, castAt: Fixtures.time("2022-11-09T00:00:00Z"))) else {
            Issue.record("a vote after certification was accepted")
            return
        }
        #expect(sealed.code == .electionSealed)
        let ranking = try #require(try ledger.reader.projection(id, .ranking))
        #expect(String(decoding: ranking, as: UTF8.self).contains("\"certified\":{\"winner\":\"kinn\"}"))
        ledger.close()
        // Reopening replays every event through the rules, certification included.
        let reopened = try Ledger(path: dir.sub("ledger"), options: Fixtures.options(), clock: clock)
        #expect(reopened.state[id]?.certified?.winner == Fixtures.slug("kinn"))
    }

    @Test func proofsAskedPastTheEndAreUsageErrors() throws {
        let dir = TemporaryDirectory()
        let ledger = try Fixtures.ledgerWithElection(in: dir)
        let n = ledger.size
        for call in [{ _ = try ledger.reader.root(size: n + 1) },
                     { _ = try ledger.reader.inclusionProof(seq: 0, size: n) },
                     { _ = try ledger.reader.inclusionProof(seq: n, size: n + 1) },
                     { _ = try ledger.reader.inclusionProof(seq: 3, size: 2) },
                     { _ = try ledger.reader.consistencyProof(oldSize: 5, newSize: 4) },
                     { _ = try ledger.reader.consistencyProof(oldSize: 1, newSize: n + 1) }] {
            let error = #expect(throws: LedgerError.self) { try call() }
            guard case .outOfRange? = error else { Issue.record("expected outOfRange, got \(String(describing: error))"); continue }
        }
    }

    @Test func aLedgerAtItsMaximumRefusesTheBatchAsLedgerFullAndWritesNothing() throws {
        let dir = TemporaryDirectory()
        let ledger = try Fixtures.ledgerWithElection(in: dir, options: Fixtures.options(mapSize: 512 << 10, maxMapSize: 512 << 10))
        let before = (size: ledger.size, root: ledger.root, votes: ledger.state[id]!.votesCast)
        let error = #expect(throws: LedgerError.self) {
            try ledger.submit(Fixtures.votes(0..<20_000).map { Submission($0, by: Fixtures.importer) })
        }
        #expect(error?.isLedgerFull == true)
        #expect("\(error!)".contains("nothing from this transaction was written"))
        #expect(ledger.size == before.size)
        #expect(ledger.root == before.root)
        #expect(ledger.state[id]!.votesCast == before.votes)
        #expect(try ledger.reader.size() == before.size)
        // A batch that fits still goes through, and the refused voters may vote.
        #expect(try ledger.submit(Submission(Fixtures.votes(0..<1)[0], by: Fixtures.importer)).receipt != nil)
    }

    @Test func theRawVoterIdentifierIsNeverStored() throws {
        let dir = TemporaryDirectory()
        let ledger = try Fixtures.ledgerWithElection(in: dir)
        let raw = "Ola.Nordmann@Example.no"
        let key = Fixtures.hasher.key(for: raw)
        _ = try ledger.submit(Submission(.castVote(election: id, nominee: Fixtures.slug("kinn"), voter: key, castAt: nil, channel: "web"), by: Fixtures.importer))
        ledger.close()
        let file = try Data(contentsOf: URL(fileURLWithPath: dir.sub("ledger/data.mdb")))
        #expect(file.range(of: Data(raw.utf8)) == nil)
        #expect(file.range(of: Data(raw.lowercased().utf8)) == nil)
        #expect(file.range(of: key.withBytes { Data($0) }) != nil)
    }

    @Test func aRecordThatDoesNotDecodeIsReportedWithItsSequenceNumber() throws {
        let dir = TemporaryDirectory()
        let ledger = try Fixtures.ledgerWithElection(in: dir)
        _ = try ledger.submit((0..<20).map { cast($0) })
        ledger.close()
        try tamper(dir) { txn, events in try txn.put(LedgerKeys.sequence(15), [1, 5, 0, 0], in: events) }
        let error = #expect(throws: LedgerError.self) {
            try Ledger(path: dir.sub("ledger"), options: Fixtures.options(), clock: ManualClock(Fixtures.now))
        }
        guard case .corruptRecord(let seq, _)? = error else { Issue.record("expected corruptRecord, got \(String(describing: error))"); return }
        #expect(seq == 15)
    }

    @Test func aMissingRecordIsReportedNotSkipped() throws {
        let dir = TemporaryDirectory()
        let ledger = try Fixtures.ledgerWithElection(in: dir)
        _ = try ledger.submit((0..<20).map { cast($0) })
        ledger.close()
        try tamper(dir) { txn, events in try txn.delete(LedgerKeys.sequence(12), in: events) }
        let error = #expect(throws: LedgerError.self) {
            try Ledger(path: dir.sub("ledger"), options: Fixtures.options(), clock: ManualClock(Fixtures.now))
        }
        #expect("\(error!)".contains("sequence number 12"))
        #expect("\(error!)".contains("missing"))
    }

    @Test func anEventTheRulesRefuseIsFoundOnOpen() throws {
        let dir = TemporaryDirectory()
        let ledger = try Fixtures.ledgerWithElection(in: dir)
        _ = try ledger.submit((0..<5).map { cast($0) })
        let size = ledger.size
        ledger.close()
        // Append a well-formed second vote by voter 0, as if written around the rules.
        let forged = RecordedEvent(seq: size + 1, timestamp: Fixtures.time(Fixtures.now), actor: Fixtures.importer,
                                   event: .voteCast(VoteCast(election: id, nominee: Fixtures.slug("bodo"), voter: Fixtures.voter(0), castAt: Fixtures.time("2022-11-02T12:00:00Z"), channel: "")))
        try tamper(dir) { txn, events in try txn.put(LedgerKeys.sequence(size + 1), RecordCodec.encode(forged), in: events) }
        let error = #expect(throws: LedgerError.self) {
            try Ledger(path: dir.sub("ledger"), options: Fixtures.options(), clock: ManualClock(Fixtures.now))
        }
        guard case .corruptRecord(let seq, let reason)? = error else { Issue.record("expected corruptRecord"); return }
        #expect(seq == size + 1)
        #expect(reason.contains("has already voted"))
    }

    @Test func aRewrittenRecordIsCaughtByTheMerkleCheckOnOpen() throws {
        let dir = TemporaryDirectory()
        let ledger = try Fixtures.ledgerWithElection(in: dir)
        _ = try ledger.submit(Fixtures.votes(0..<40).map { Submission($0, by: Fixtures.importer) })
        let seq = ledger.size - 20
        ledger.close()
        // One vote rewritten for another nominee: still a valid vote, so the rules accept it.
        let env = try Environment(path: dir.sub("ledger"), options: EnvironmentOptions(mapSize: 16 << 20, readOnly: true))
        let events = try env.openDatabase("events", create: false)
        var record = try #require(try env.read { txn in try txn.value(forKey: LedgerKeys.sequence(seq), in: events) }.map { bytes in
            try bytes.withUnsafeBytes { try RecordCodec.decode($0, seq: seq) }
        })
        env.close()
        guard case .voteCast(var vote) = record.event else { Issue.record("not a vote"); return }
        vote.nominee = Fixtures.slug(vote.nominee.value == "kinn" ? "bodo" : "kinn")
        record.event = .voteCast(vote)
        try tamper(dir) { txn, events in try txn.put(LedgerKeys.sequence(seq), RecordCodec.encode(record), in: events) }
        let error = #expect(throws: LedgerError.self) {
            try Ledger(path: dir.sub("ledger"), options: Fixtures.options(), clock: ManualClock(Fixtures.now))
        }
        guard case .corruptRecord(_, let reason)? = error else { Issue.record("expected corruptRecord"); return }
        #expect(reason.contains("do not hash to their stored Merkle node"))
        // Opening without verification trusts the stored tree (the faster start it offers).
        #expect(throws: Never.self) { try Ledger(path: dir.sub("ledger"), options: Ledger.Options(environment: EnvironmentOptions(mapSize: 16 << 20), check: .none), clock: ManualClock(Fixtures.now)) }
    }

    @Test func aMissingMerkleNodeIsFoundOnOpen() throws {
        let dir = TemporaryDirectory()
        let ledger = try Fixtures.ledgerWithElection(in: dir)
        _ = try ledger.submit(Fixtures.votes(0..<40).map { Submission($0, by: Fixtures.importer) })
        ledger.close()
        try tamper(dir, database: "merkle") { txn, merkle in
            let deleted = try txn.delete(LedgerKeys.merkleNode(level: 4, index: 1), in: merkle)
            #expect(deleted)
        }
        let error = #expect(throws: LedgerError.self) {
            try Ledger(path: dir.sub("ledger"), options: Fixtures.options(), clock: ManualClock(Fixtures.now))
        }
        guard case .corruptRecord(let seq, let reason)? = error else { Issue.record("expected corruptRecord"); return }
        #expect(seq == 17)
        #expect(reason.contains("missing"))
    }

    @Test func aTimestampGoingBackwardsIsFoundOnOpen() throws {
        let dir = TemporaryDirectory()
        let ledger = try Fixtures.ledgerWithElection(in: dir)
        _ = try ledger.submit(cast(1))
        let last = ledger.size
        var record = try #require(try ledger.reader.record(last))
        ledger.close()
        record.timestamp = Fixtures.time("2022-11-01T00:00:00Z")
        try tamper(dir) { txn, events in try txn.put(LedgerKeys.sequence(last), RecordCodec.encode(record), in: events) }
        let error = #expect(throws: LedgerError.self) {
            try Ledger(path: dir.sub("ledger"), options: Fixtures.options(), clock: ManualClock(Fixtures.now))
        }
        guard case .corruptRecord(let seq, _)? = error else { Issue.record("expected corruptRecord"); return }
        #expect(seq == last)
    }

    @Test func aForgedInvalidationIsFoundOnOpen() throws {
        let dir = TemporaryDirectory()
        let ledger = try Fixtures.ledgerWithElection(in: dir)
        let vote = try #require(try ledger.submit(cast(1, "kinn")).receipt)
        _ = try ledger.submit(Submission(.invalidateVote(election: id, vote: vote.seq, reason: "test"), by: Fixtures.admin))
        let last = ledger.size
        var record = try #require(try ledger.reader.record(last))
        ledger.close()
        guard case .voteInvalidated(var x) = record.event else { Issue.record("not an invalidation"); return }
        x.nominee = Fixtures.slug("bodo")   // takes a vote from the wrong nominee
        record.event = .voteInvalidated(x)
        try tamper(dir) { txn, events in try txn.put(LedgerKeys.sequence(last), RecordCodec.encode(record), in: events) }
        let error = #expect(throws: LedgerError.self) {
            try Ledger(path: dir.sub("ledger"), options: Fixtures.options(), clock: ManualClock(Fixtures.now))
        }
        guard case .corruptRecord(let seq, let reason)? = error else { Issue.record("expected corruptRecord"); return }
        #expect(seq == last)
        #expect(reason.contains("differs from what the rules give"))
    }

    @Test func aNewerFormatIsRefused() throws {
        let dir = TemporaryDirectory()
        try Fixtures.ledgerWithElection(in: dir).close()
        try tamper(dir, database: "meta") { txn, meta in try txn.put(Array("format".utf8), [9], in: meta) }
        let error = #expect(throws: LedgerError.self) {
            try Ledger(path: dir.sub("ledger"), options: Fixtures.options(), clock: ManualClock(Fixtures.now))
        }
        #expect("\(error!)".contains("format version 9"))
    }

    /// Writes to one database of the ledger's LMDB environment directly, around the ledger.
    func tamper(_ dir: TemporaryDirectory, database: String = "events",
                _ change: (borrowing WriteTransaction, Database) throws -> Void) throws {
        let env = try Environment(path: dir.sub("ledger"), options: EnvironmentOptions(mapSize: 16 << 20))
        defer { env.close() }
        let db = try env.openDatabase(database, create: false)
        try env.write { txn in try change(txn, db) }
    }
}

/// Roots and proofs read from a real ledger, where nodes from level 4 up are stored and lower
/// ones are recomputed from records, checked against RFC 6962 computed from the records alone.
@Suite struct LedgerProofTests {
    @Test func rootsAndProofsFromTheStoreMatchTheRecords() throws {
        let dir = TemporaryDirectory()
        let ledger = try Fixtures.ledgerWithElection(in: dir)
        _ = try ledger.submit(Fixtures.votes(0..<300).map { Submission($0, by: Fixtures.importer) })
        let n = ledger.size
        let leaves = try (1...n).map { seq in try #require(try ledger.reader.rawRecord(seq)).withUnsafeBytes { MerkleHash.leaf($0) } }
        func naive(_ d: ArraySlice<MerkleHash>) -> MerkleHash {
            if d.count == 1 { return d.first! }
            var k = 1
            while k * 2 < d.count { k *= 2 }
            return MerkleHash.node(naive(d.prefix(k)), naive(d.dropFirst(k)))
        }
        #expect(try ledger.reader.root().root == naive(leaves[...]))
        #expect(ledger.root == naive(leaves[...]))
        for size in [1, 2, 15, 16, 17, 31, 32, 33, 100, 255, 256, Int(n)] {
            let root = try ledger.reader.root(size: UInt64(size)).root
            #expect(root == naive(leaves.prefix(size)), "size \(size)")
            for seq in [1, size / 2 + 1, size] {
                let proof = try ledger.reader.inclusionProof(seq: UInt64(seq), size: UInt64(size))
                #expect(MerkleTree.verifyInclusion(leaf: leaves[seq - 1], index: UInt64(seq - 1), size: UInt64(size), proof: proof, root: root))
                #expect(try ledger.reader.leafHash(UInt64(seq)) == leaves[seq - 1])
            }
            let consistency = try ledger.reader.consistencyProof(oldSize: UInt64(size), newSize: n)
            #expect(MerkleTree.verifyConsistency(oldSize: UInt64(size), newSize: n, oldRoot: root, newRoot: ledger.root, proof: consistency))
        }
    }
}
