import Testing
import TestSupport
@testable import BallotDomain

@Suite struct ProjectionTests {
    let id = Fixtures.electionID
    let now = Fixtures.time(Fixtures.now)

    func state(votes: [String], scores: [(String, String, String, Int32)] = [], invalidate: [Int] = [],
               formula: Formula = .evenSplit) throws -> ElectionState {
        var s = LedgerState()
        var seq: UInt64 = 0
        var votesBySeq: [UInt64: VoteCast] = [:]
        func apply(_ c: Command) throws {
            let e = try s.decide(c, at: now) { votesBySeq[$0] }
            seq += 1
            if case .voteCast(let v) = e { votesBySeq[seq] = v }
            s.apply(RecordedEvent(seq: seq, timestamp: now, actor: Fixtures.admin, event: e))
        }
        var definition = Fixtures.definition()
        definition.formula = formula
        for c in [.defineElection(definition)] + Fixtures.setUpCommands().dropFirst() { try apply(c) }
        let firstVote = seq + 1
        for (i, n) in votes.enumerated() {
            try apply(.castVote(election: id, nominee: Fixtures.slug(n), voter: Fixtures.voter(i), castAt: Fixtures.time("2022-11-0\(1 + i % 3)T0\(i % 10):30:00Z"), channel: ""))
        }
        for i in invalidate { try apply(.invalidateVote(election: id, vote: firstVote + UInt64(i), reason: "test")) }
        for (j, n, c, v) in scores {
            try apply(.scoreJury(election: id, juror: Fixtures.slug(j), nominee: Fixtures.slug(n), criterion: Fixtures.slug(c), score: v))
        }
        return s[id]!
    }

    @Test func tallyCountsSharesAndBreaksTiesByID() throws {
        let e = try state(votes: ["kinn", "kinn", "bodo", "vennesla", "bodo", "kinn", "haugesund"], invalidate: [5])
        let t = Tally(e)
        #expect(t.votesCast == 7)
        #expect(t.validVotes == 6)
        #expect(t.invalidated == 1)
        #expect(t.entries.map(\.nominee.value) == ["bodo", "kinn", "haugesund", "vennesla", "raelingen"])
        #expect(t.entries.map(\.votes) == [2, 2, 1, 1, 0])
        #expect(t.entries[0].share == 2.0 / 6.0)
        #expect(t.entries.map(\.rank) == [1, 2, 3, 4, 5])
    }

    @Test func juryTableAveragesAndWeights() throws {
        let e = try state(votes: [], scores: [
            ("jury-a", "kinn", "results", 8), ("jury-b", "kinn", "results", 6),
            ("jury-a", "kinn", "settlement", 10), ("jury-a", "bodo", "results", 1),
        ])
        let table = JuryTable(e)
        let kinn = table.row(Fixtures.slug("kinn"))!
        #expect(kinn.criteria[0].mean == 7)
        #expect(kinn.criteria[1].mean == 10)
        #expect(kinn.criteria[2].mean == nil)
        #expect(kinn.weighted == 8.5)
        #expect(kinn.normalized == (8.5 - 1) / 9)
        #expect(table.row(Fixtures.slug("bodo"))!.normalized == 0)
        #expect(table.firstMissing?.nominee == Fixtures.slug("bodo"))
        #expect(table.firstMissing?.criterion == Fixtures.slug("settlement"))
    }

    @Test func rankingCombinesBothWithTheFormulaAndShowsItsInputs() throws {
        let e = try state(votes: ["bodo", "bodo", "bodo", "kinn"], scores: [
            ("jury-a", "kinn", "results", 10), ("jury-a", "bodo", "results", 1),
        ])
        let r = Ranking(e)
        let kinn = r.entries.first { $0.nominee.value == "kinn" }!
        let bodo = r.entries.first { $0.nominee.value == "bodo" }!
        #expect(kinn.combined == 0.5 * 0.25 + 0.5 * 1.0)
        #expect(bodo.combined == 0.5 * 0.75 + 0.5 * 0.0)
        #expect(r.entries[0].nominee.value == "kinn")
        let json = r.json.text
        #expect(json.contains("\"formula\":{\"public_weight\":0.5,\"jury_weight\":0.5"))
        #expect(json.contains("\"tie_break\":[\"combined desc\",\"jury_normalized desc\",\"votes desc\",\"nominee asc\"]"))
    }

    @Test func rankingTieBreaksAreDeterministic() throws {
        // No votes, no scores: all combined 0, all jury 0, all votes 0 → nominee id order.
        let r = Ranking(try state(votes: []))
        #expect(r.entries.map(\.nominee.value) == Fixtures.nominees.sorted())

        // Equal combined, different jury: the jury decides. bodo: share 2/3, jury 0;
        // kinn: share 1/3, jury (4 − 1) / 9 = 1/3; both combine to exactly 1/3.
        let tied = Ranking(try state(votes: ["bodo", "bodo", "kinn"], scores: [("jury-a", "kinn", "results", 4), ("jury-a", "bodo", "results", 1)]))
        let top = Array(tied.entries.prefix(2))
        #expect(top[0].combined == top[1].combined)
        #expect(top.map(\.nominee.value) == ["kinn", "bodo"])

        // Equal combined and jury (the public vote weighs nothing), different votes: votes decide.
        let byVotes = Ranking(try state(votes: ["vennesla", "vennesla", "bodo"], scores: [("jury-a", "bodo", "results", 5), ("jury-a", "vennesla", "results", 5)],
                                        formula: Formula(publicWeight: 0, juryWeight: 1)))
        #expect(byVotes.entries.prefix(2).map(\.nominee.value) == ["vennesla", "bodo"])
        #expect(byVotes.entries[0].combined == byVotes.entries[1].combined)
    }

    @Test func manyNomineesAndElectionsUseTheHashedIndex() throws {
        var s = LedgerState()
        var seq: UInt64 = 0
        let now = self.now
        func apply(_ c: Command) throws {
            let e = try s.decide(c, at: now) { _ in nil }
            seq += 1
            s.apply(RecordedEvent(seq: seq, timestamp: now, actor: Fixtures.admin, event: e))
        }
        for i in 0..<20 {
            let id = Fixtures.slug("e\(i)")
            try apply(.defineElection(Fixtures.definition(id)))
            for n in 0..<20 { try apply(.addNominee(election: id, nomination: Fixtures.nomination("n\(n)"))) }
        }
        try apply(.castVote(election: Fixtures.slug("e17"), nominee: Fixtures.slug("n19"), voter: Fixtures.voter(1), castAt: nil, channel: ""))
        #expect(s[Fixtures.slug("e17")]?.ordinal(of: Fixtures.slug("n19")) == 19)
        #expect(s[Fixtures.slug("e17")]?.votes[19] == 1)
        #expect(s[Fixtures.slug("e3")]?.validVotes == 0)
        #expect(s[Fixtures.slug("e20")] == nil)
    }

    @Test func votesOverTimeBucketsByCastAt() throws {
        let e = try state(votes: ["kinn", "bodo", "kinn", "kinn"])
        let start = e.definition.bucket(of: Fixtures.time("2022-11-01T00:30:00Z"))
        #expect(start == Fixtures.time("2022-11-01T00:00:00Z").microseconds)
        let b = VotesOverTimeBucket(e, bucket: start)
        #expect(b.total == 1)
        #expect(b.json.text.contains("\"start\":\"2022-11-01T00:00:00Z\""))
        #expect(e.series.values.reduce(0) { $0 + $1.reduce(0, +) } == 4)
    }
}
