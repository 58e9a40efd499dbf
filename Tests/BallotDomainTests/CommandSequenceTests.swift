import Foundation
import Testing
import PropertyBased
import TestSupport
@testable import BallotDomain

/// Issue 18, method 5: the rules and projections over random command sequences, written and
/// taken back as the writer does (a batch is applied with a journal; a failed one is taken back).
/// After every sequence:
/// - the state built step by step equals a rebuild from the recorded events, as an image and in
///   every projection, and so does one that went through its image halfway (the kept state);
/// - every recorded event passes `check`, the audit's rule, when replayed;
/// - each election's tally sums to the votes recorded minus those invalidated;
/// - no voter's key is counted twice in an election, and everyone recorded has voted.
@Suite struct CommandSequenceTests {
    /// One step, drawn as numbers so that the library can shrink a failing sequence: `kind`
    /// picks the command, `a`, `b`, `c` fill it in (`LedgerModel.command` says how).
    struct Step: Sendable, CustomStringConvertible {
        var kind: Int, a: Int, b: Int, c: Int
        var description: String { "(\(kind),\(a),\(b),\(c))" }
    }

    /// Sequences per run: `BALLOT_PROPERTY_RUNS` sets it for a long run.
    static let runs = Int(ProcessInfo.processInfo.environment["BALLOT_PROPERTY_RUNS"] ?? "") ?? 200

    static let steps = zip(Gen.int(in: 0...99), Gen.int(in: 0...63), Gen.int(in: 0...63), Gen.int(in: 0...63))
        .map { Step(kind: $0, a: $1, b: $2, c: $3) }
        .array(of: 0...400)

    @Test func incrementalStateEqualsARebuildAndTheCountsAddUp() async throws {
        var seen = LedgerModel.Seen()
        await propertyCheck(count: Self.runs, input: Self.steps) { steps in
            var model = LedgerModel()
            for step in steps { model.take(step) }
            model.endBatch(commit: true)
            model.checkAgainstARebuild()
            seen.add(model.seen)
        }
        // Not vacuous: the sequences recorded votes, invalidations and scores, refused some
        // commands, took failed batches back and went through the kept state.
        #expect(seen.votes > 0 && seen.invalidations > 0 && seen.scores > 0 && seen.refused > 0, "\(seen)")
        #expect(seen.takenBack > 0 && seen.throughImage > 0, "\(seen)")
    }
}

/// What the writer does with commands, in miniature: decide against the live state, apply
/// with a journal, commit a batch or take it back.
struct LedgerModel {
    static let elections = [Fixtures.slug("award-a"), Fixtures.slug("award-b")]
    // Two of each beyond the fixture's own, which the rules refuse as unknown.
    static let nominees = Fixtures.nominees + ["nowhere", "atlantis"]
    static let jurors = Fixtures.jurors + ["stranger"]
    static let criteria = Fixtures.criteria + ["charm"]
    static let now = Fixtures.time(Fixtures.now)

    var state = LedgerState()
    var recorded: [RecordedEvent] = []
    var votes: [UInt64: VoteCast] = [:]
    var pending: [RecordedEvent] = []
    var journal: LedgerState.Journal?
    var seen = Seen()

    /// How often each thing happened, so that a test can tell it is not vacuous.
    struct Seen: CustomStringConvertible {
        var votes = 0, invalidations = 0, scores = 0, refused = 0, takenBack = 0, throughImage = 0
        mutating func add(_ o: Seen) {
            votes += o.votes; invalidations += o.invalidations; scores += o.scores
            refused += o.refused; takenBack += o.takenBack; throughImage += o.throughImage
        }
        var description: String {
            "votes \(votes), invalidations \(invalidations), scores \(scores), refused \(refused), batches taken back \(takenBack), through the image \(throughImage)"
        }
    }

    init() {
        // Election b is decided by rules version 1, so both versions are exercised.
        var b = Fixtures.definition(Self.elections[1])
        b.rules = .v1
        for command in Fixtures.setUpCommands(Self.elections[0]) + [.defineElection(b)] + Fixtures.setUpCommands(Self.elections[1]).dropFirst() {
            submit(command)
        }
        endBatch(commit: true)
        precondition(recorded.count == 2 * (1 + Fixtures.nominees.count + Fixtures.jurors.count), "the set-up was refused")
    }

    func command(_ s: CommandSequenceTests.Step) -> Command? {
        let election = Self.elections[s.a % 2]
        switch s.kind {
        case 0..<55:
            // Mostly inside the window; now and then after it closes.
            let castAt = s.c % 17 == 0 ? Fixtures.time("2022-11-12T00:00:00Z")
                : Timestamp(microseconds: Fixtures.time("2022-11-01T00:00:00Z").microseconds + Int64(s.c) * 3_600_000_000)
            return .castVote(election: election, nominee: Fixtures.slug(Self.nominees[s.b % Self.nominees.count]),
                             voter: Fixtures.voter(s.c % 40 + 40 * (s.b % 2)), castAt: s.kind % 5 == 0 ? nil : castAt, channel: "web")
        case 55..<65:
            return .invalidateVote(election: election, vote: UInt64(s.b * 4 + s.c % 4), reason: "property test")
        case 65..<85:
            return .scoreJury(election: election, juror: Fixtures.slug(Self.jurors[s.b % Self.jurors.count]),
                              nominee: Fixtures.slug(Self.nominees[s.c % Self.nominees.count]),
                              criterion: Fixtures.slug(Self.criteria[(s.b + s.c) % Self.criteria.count]), score: Int32(s.c % 13) - 1)
        case 85..<87: return .closeVoting(election: election)
        case 87..<89: return .closeJury(election: election)
        case 89..<91: return .certifyResult(election: election)
        case 91..<93: return .openVoting(election: election)
        default: return nil
        }
    }

    /// A command, or a batch boundary: kinds 93 and up end the batch, and one in three of those
    /// fails it, as a failed commit (a full map, an I/O error) does.
    mutating func take(_ step: CommandSequenceTests.Step) {
        if let command = command(step) {
            submit(command)
        } else {
            endBatch(commit: step.b % 3 != 0)
        }
        if step.kind == 99 && step.a % 4 == 0 { throughImage() }
    }

    mutating func submit(_ command: Command) {
        if journal == nil { journal = state.journal() }
        let seq = state.lastSeq + 1
        let lookup: (UInt64) -> VoteCast? = { [votes, pending] seq in
            votes[seq] ?? pending.first { $0.seq == seq }.flatMap { if case .voteCast(let v) = $0.event { v } else { nil } }
        }
        guard let event = try? state.decide(command, at: Self.now, lookupVote: lookup) else {
            seen.refused += 1
            return
        }
        let record = RecordedEvent(seq: seq, timestamp: Self.now, actor: Fixtures.admin, event: event)
        state.apply(record, journal: &journal!)
        pending.append(record)
    }

    mutating func endBatch(commit: Bool) {
        guard let journal else { return }
        if commit {
            for record in pending {
                recorded.append(record)
                switch record.event {
                case .voteCast(let v): votes[record.seq] = v; seen.votes += 1
                case .voteInvalidated: seen.invalidations += 1
                case .juryScored: seen.scores += 1
                default: break
                }
            }
        } else {
            state.takeBack(journal)
            seen.takenBack += 1
        }
        pending = []
        self.journal = nil
    }

    /// What a restart from the kept state does: the state from its image and its voter table.
    mutating func throughImage() {
        endBatch(commit: true)
        do {
            state = try LedgerState(image: state.image, voters: state.voters.forked().keys)
            seen.throughImage += 1
        } catch {
            Issue.record("the state's own image was refused: \(error)")
        }
    }

    func checkAgainstARebuild() {
        #expect(pending.isEmpty)
        var rebuilt = LedgerState()
        var checked = LedgerState()
        for record in recorded {
            rebuilt.apply(record)
            let refusal = try? checked.check(record) { votes[$0] }
            #expect(refusal == nil, "event \(record.seq) (\(record.event)) decided live is refused on replay: \(String(describing: refusal))")
            checked.apply(record, checked: nil)
        }
        #expect(state.image == rebuilt.image)
        #expect(checked.image == rebuilt.image)
        #expect(state.lastSeq == UInt64(recorded.count))

        for id in Self.elections {
            let live = state[id]!, again = rebuilt[id]!
            #expect(Tally(live).json.text == Tally(again).json.text, "tally of \(id)")
            #expect(JuryTable(live).json.text == JuryTable(again).json.text, "jury table of \(id)")
            #expect(Ranking(live).json.text == Ranking(again).json.text, "ranking of \(id)")

            let cast = recorded.compactMap { r -> VoteCast? in if case .voteCast(let v) = r.event, v.election == id { v } else { nil } }
            let invalidated = recorded.filter { if case .voteInvalidated(let i) = $0.event { i.election == id } else { false } }.count
            let tally = Tally(live)
            #expect(tally.entries.map(\.votes).reduce(0, +) == cast.count - invalidated)
            #expect(tally.votesCast == cast.count)
            #expect(tally.invalidated == invalidated)

            let voters = cast.map(\.voter)
            #expect(Set(voters).count == voters.count, "a voter counted twice in \(id)")
            for voter in Set(voters) { #expect(state.hasVoted(voter, in: id) { votes[$0] }) }
            #expect(!state.hasVoted(Fixtures.voter(999), in: id) { votes[$0] })
        }
    }
}
