import Testing
import TestSupport
@testable import BallotLedger
@testable import BallotFormat
@testable import BallotAudit
@testable import BallotDomain

/// Projections are a function of the events alone: a rebuild from event 1, and a ledger fed the
/// same commands in other batch sizes, give the same bytes.
@Suite struct RebuildTests {
    let id = Fixtures.electionID

    /// 100,000 votes, some invalidations, a full jury with amendments.
    func feed(_ ledger: Ledger, batchSize: Int) throws {
        var commands: [Command] = Fixtures.votes(0..<100_000)
        let firstVote = ledger.size + 1
        for i in stride(from: 0, to: 100_000, by: 997) {
            commands.append(.invalidateVote(election: id, vote: firstVote + UInt64(i), reason: "test invalidation \(i)"))
        }
        for (j, juror) in Fixtures.jurors.enumerated() {
            for (n, nominee) in Fixtures.nominees.enumerated() {
                for (c, criterion) in Fixtures.criteria.enumerated() {
                    for amendment in 0..<2 {
                        commands.append(.scoreJury(election: id, juror: Fixtures.slug(juror), nominee: Fixtures.slug(nominee),
                                                   criterion: Fixtures.slug(criterion), score: Int32(1 + (j * 3 + n * 7 + c + amendment) % 10)))
                    }
                }
            }
        }
        for start in stride(from: 0, to: commands.count, by: batchSize) {
            let outcomes = try ledger.submit(commands[start..<min(start + batchSize, commands.count)].map { Submission($0, by: Fixtures.importer) })
            #expect(outcomes.allSatisfy { $0.receipt != nil })
        }
    }

    @Test func aRebuildFromEventOneIsByteIdentical() throws {
        let dir = TemporaryDirectory()
        let ledger = try Fixtures.ledgerWithElection(in: dir)
        try feed(ledger, batchSize: 10_000)
        #expect(ledger.state[id]!.votesCast == 100_000)
        let incremental = try ledger.reader.storedProjections()
        #expect(incremental["projections"]?.count == 3)
        #expect((incremental["series"]?.count ?? 0) > 200)

        try ledger.rebuildProjections()
        let rebuilt = try ledger.reader.storedProjections()
        #expect(rebuilt == incremental)

        // Another ledger fed the same commands in other batches stores the same projections.
        let other = TemporaryDirectory()
        let second = try Fixtures.ledgerWithElection(in: other)
        try feed(second, batchSize: 7_919)
        #expect(try second.reader.storedProjections() == incremental)
        // Same events at the same (fixed) clock: the same log, byte for byte.
        #expect(second.size == ledger.size)
        #expect(second.root == ledger.root)
    }
}
