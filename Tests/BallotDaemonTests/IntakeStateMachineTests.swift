import Testing
import Foundation
import BallotDomain
import BallotFormat
import BallotImport
@testable import BallotLedger
import TestSupport
@testable import BallotDaemon

/// The JetStream intake's loop without NATS or a writer: what each message becomes, and which
/// messages are acknowledged or delivered again after each kind of failure.
@Suite struct IntakeStateMachineTests {
    typealias Machine = IntakeStateMachine

    func machine() -> Machine {
        let rows = IntakeRows(subjectPrefix: "ballot.votes", identity: VoterIdentity(hasher: Fixtures.hasher),
                              definitions: { $0 == Fixtures.electionID ? Fixtures.definition() : nil }, actor: Fixtures.importer)
        var m = Machine(rows: rows, outcomesSubject: "ballot.outcomes")
        guard case .setUp = m.start(), case .fetch = m.setUpDone() else { preconditionFailure("a new machine sets up, then fetches") }
        return m
    }

    func vote(_ id: String, seq: UInt64, delivered: UInt64 = 1, header: String? = nil, voter: String = "v@example.no",
              subject: String = "ballot.votes.award-2022", body: String? = nil) -> IntakeMessage {
        let row = body ?? #"{"vote_id":"\#(id)","voter":"\#(voter)","nominee":"kinn","cast_at":"2022-11-03T10:00:00Z","channel":"web"}"#
        return IntakeMessage(subject: subject, messageID: header ?? id, body: Array(row.utf8), streamSequence: seq, delivered: delivered)
    }

    func leaf(_ n: UInt64) -> MerkleHash { MerkleHash(hex: String(repeating: String(format: "%02x", n), count: 32))! }
    func receipt(_ seq: UInt64) -> Receipt { Receipt(seq: seq, leafHash: leaf(seq)) }

    @Test func aBatchIsDecidedInOneJobAndEveryMessageAcknowledgedAfterItsOutcomeIsStored() throws {
        var m = machine()
        let messages = [
            vote("web-1", seq: 1, voter: "a@example.no"),
            vote("web-2", seq: 2, body: "{not json"),
            vote("web-3", seq: 3, header: ""),
            vote("web-4", seq: 4, header: "web-44"),
            vote("web-5", seq: 5, subject: "ballot.votes.Not_An_Id"),
            vote("web-6", seq: 6, body: "{\"vote_id\":\"web-6\"}\n{\"vote_id\":\"web-7\"}"),
            vote("web-8", seq: 8, voter: "b@example.no"),
        ]
        guard case .submit(let submissions) = m.fetched(messages) else { Issue.record("no job"); return }
        #expect(submissions.map(\.idempotencyKey) == ["web-1", "web-8"])
        guard case .publish(let outcomes) = m.decided(.success([.appended(receipt(10)), .refused(DomainError(.duplicateVote, "voted"))])) else {
            Issue.record("nothing published"); return
        }
        let byID = Dictionary(uniqueKeysWithValues: outcomes.map { ($0.streamSequence, $0) })
        #expect(byID[1]?.decision == .accepted(seq: 10, leafHash: leaf(10), alreadyPresent: false))
        #expect(outcomes.count == 7)
        func code(_ seq: UInt64) -> String? { if case .refused(let c, _)? = byID[seq]?.decision { c } else { nil } }
        #expect(code(2) == "bad_json")
        #expect(code(3) == "bad_request")      // no Nats-Msg-Id
        #expect(code(4) == "bad_request")      // a Nats-Msg-Id that is not the vote_id
        #expect(code(5) == "wrong_election")
        #expect(code(6) == "bad_request")      // two rows in one message
        #expect(code(8) == "duplicate_vote")
        // Each outcome is on its election's subject, keyed by the vote_id's hash, and names its message.
        #expect(byID[1]?.subject(prefix: "ballot.outcomes") == "ballot.outcomes.award-2022.\(IntakeOutcome.voteToken("web-1")).1")
        #expect(byID[1]?.messageID == "\(IntakeOutcome.voteToken("web-1")).1")
        #expect(byID[5]?.subject(prefix: "ballot.outcomes") == "ballot.outcomes._invalid.\(IntakeOutcome.voteToken("web-5")).5")
        #expect(IntakeOutcome.streamSequence(ofDocument: byID[8]!.document) == 8)
        guard case .settle(let ack, let retry) = m.published(allStored: true) else { Issue.record("not settled"); return }
        #expect(ack == Array(0..<7) && retry.isEmpty)
        guard case .fetch = m.settled() else { Issue.record("no next fetch"); return }
    }

    @Test func aRedeliveredMessageWhoseOutcomeIsPublishedIsAcknowledgedWithoutBeingDecidedAgain() {
        var m = machine()
        let messages = [vote("web-1", seq: 1, delivered: 2), vote("web-2", seq: 2, delivered: 3), vote("web-3", seq: 3)]
        guard case .lookUp(let wanted) = m.fetched(messages) else { Issue.record("no look-up"); return }
        #expect(wanted.map(\.index) == [0, 1])
        #expect(wanted.map(\.streamSequence) == [1, 2])
        #expect(wanted[0].subject == "ballot.outcomes.award-2022.\(IntakeOutcome.voteToken("web-1")).1")
        // web-1's outcome is out; web-2's is not (the daemon stopped before publishing it).
        guard case .submit(let submissions) = m.lookedUp(answered: [0]) else { Issue.record("no job"); return }
        #expect(submissions.map(\.idempotencyKey) == ["web-2", "web-3"])
        guard case .publish(let outcomes) = m.decided(.success([.repeated(receipt(7)), .appended(receipt(9))])) else { Issue.record("nothing published"); return }
        #expect(outcomes.map(\.streamSequence) == [2, 3])
        #expect(outcomes[0].decision == .accepted(seq: 7, leafHash: leaf(7), alreadyPresent: true))
        guard case .settle(let ack, let retry) = m.published(allStored: true) else { Issue.record("not settled"); return }
        #expect(ack == [0, 1, 2] && retry.isEmpty)
    }

    @Test func aWriterThatFailsDecidesNothingAndItsVotesAreDeliveredAgain() {
        var m = machine()
        let messages = [vote("web-1", seq: 1), vote("web-2", seq: 2, body: "[]"), vote("web-3", seq: 3, voter: "c@example.no")]
        guard case .submit = m.fetched(messages) else { Issue.record("no job"); return }
        struct DiskFull: Error {}
        guard case .publish(let outcomes) = m.decided(.failure(DiskFull())) else { Issue.record("the refusal is not published"); return }
        #expect(outcomes.map(\.streamSequence) == [2])
        guard case .settle(let ack, let retry) = m.published(allStored: true) else { Issue.record("not settled"); return }
        #expect(ack == [1] && retry == [0, 2])
    }

    @Test func outcomesJetStreamDidNotStoreLeaveTheirVotesToBeDeliveredAgain() {
        var m = machine()
        guard case .submit = m.fetched([vote("web-1", seq: 1), vote("web-2", seq: 2, voter: "d@example.no")]) else { Issue.record("no job"); return }
        guard case .publish = m.decided(.success([.appended(receipt(1)), .appended(receipt(2))])) else { Issue.record("nothing published"); return }
        guard case .settle(let ack, let retry) = m.published(allStored: false) else { Issue.record("not settled"); return }
        #expect(ack.isEmpty && retry == [0, 1])
    }

    @Test func aNATSFailureWithMessagesInHandAsksForThemAgainThenBacksOff() {
        var m = machine()
        guard case .lookUp = m.fetched([vote("web-1", seq: 1, delivered: 2)]) else { Issue.record("no look-up"); return }
        guard case .settle(let ack, let retry) = m.failed() else { Issue.record("the batch is not given back"); return }
        #expect(ack.isEmpty && retry == [0])
        // Giving them back fails too (the server is away): pause, longer each time, up to 5 s.
        guard case .pause(let first) = m.failed() else { Issue.record("no pause"); return }
        guard case .fetch = m.paused() else { Issue.record("no fetch after the pause"); return }
        guard case .pause(let second) = m.failed() else { Issue.record("no pause"); return }
        #expect(first == 200 && second == 400)
        for _ in 0..<10 { _ = m.failed() }
        guard case .pause(let longest) = m.failed() else { Issue.record("no pause"); return }
        #expect(longest == 5000)
        // A fetch that works resets the back-off.
        _ = m.paused()
        _ = m.fetched([])
        guard case .pause(let again) = m.failed() else { Issue.record("no pause"); return }
        #expect(again == 100)
    }

    @Test func aStopEndsTheLoopOnlyAfterTheBatchInHandIsSettled() {
        var m = machine()
        guard case .submit = m.fetched([vote("web-1", seq: 1)]) else { Issue.record("no job"); return }
        m.stop()
        guard case .publish = m.decided(.success([.appended(receipt(1))])) else { Issue.record("nothing published"); return }
        guard case .settle(let ack, _) = m.published(allStored: true) else { Issue.record("not settled"); return }
        #expect(ack == [0])
        guard case .stop = m.settled() else { Issue.record("did not stop"); return }
    }

    /// A hostile message must not make its outcome too large to publish (which would hold up
    /// its whole batch for ever): the vote_id is cut to 256 bytes, the subject is bounded.
    @Test func aHugeMessageIdOrSubjectGivesAnOutcomeOfBoundedSize() {
        var m = machine()
        let huge = String(repeating: "\"", count: 600_000)
        let messages = [vote("x", seq: 1, header: huge), vote("y", seq: 2, subject: "ballot.votes." + String(repeating: "q", count: 4000))]
        guard case .publish(let outcomes) = m.fetched(messages) else { Issue.record("nothing published"); return }
        #expect(outcomes.allSatisfy { $0.voteID.utf8.count <= 256 && $0.subject(prefix: "ballot.outcomes").utf8.count < 200 && $0.document.count < 2000 })
        #expect(outcomes[1].election == "_invalid")
        // A redelivery of the first looks for its outcome where it was published.
        #expect(IntakeOutcome.subject(prefix: "ballot.outcomes", election: "award-2022", voteID: huge, streamSequence: 1)
                == outcomes[0].subject(prefix: "ballot.outcomes"))
    }

    /// Votes for an election not yet defined are refused, not read by a voter rule made without
    /// its definition: once it is defined, they are read by its rules.
    @Test func aVoteBeforeItsElectionIsDefinedIsRefusedAndNoRuleIsKeptFromIt() {
        final class Defined: @unchecked Sendable { var yes = false }
        let defined = Defined()
        let rows = IntakeRows(subjectPrefix: "ballot.votes", identity: VoterIdentity(hasher: Fixtures.hasher),
                              definitions: { defined.yes && $0 == Fixtures.electionID ? Fixtures.definition() : nil }, actor: Fixtures.importer)
        var m = Machine(rows: rows, outcomesSubject: "ballot.outcomes")
        _ = m.start(); _ = m.setUpDone()
        guard case .publish(let early) = m.fetched([vote("web-1", seq: 1)]) else { Issue.record("not refused"); return }
        #expect(early.first?.decision == .refused(code: "unknown_election", message: "no election 'award-2022' is defined"))
        _ = m.published(allStored: true); _ = m.settled()
        defined.yes = true
        guard case .submit(let submissions) = m.fetched([vote("web-2", seq: 2, voter: "A@Example.no")]) else { Issue.record("no job"); return }
        var reference = IntakeRows(subjectPrefix: "ballot.votes", identity: VoterIdentity(hasher: Fixtures.hasher),
                                   definitions: { _ in Fixtures.definition() }, actor: Fixtures.importer)
        guard case .success(let expected) = reference.read(vote("web-2", seq: 2, voter: "A@Example.no")) else { Issue.record("unread"); return }
        #expect(submissions.first?.command == expected.command)
    }

    @Test func aServerThatLostTheStreamIsSetUpAgain() {
        var m = machine()
        guard case .pause = m.failed(setUpLost: true), case .setUp = m.paused() else { Issue.record("not set up again"); return }
        guard case .fetch = m.setUpDone() else { Issue.record("no fetch after the set-up"); return }
    }

    @Test func aSetUpThatFailsIsTriedAgainAfterAPause() {
        let rows = IntakeRows(subjectPrefix: "ballot.votes", identity: VoterIdentity(hasher: Fixtures.hasher),
                              definitions: { _ in nil }, actor: Fixtures.importer)
        var m = Machine(rows: rows, outcomesSubject: "ballot.outcomes")
        guard case .setUp = m.start(), case .pause = m.failed(), case .setUp = m.paused() else { Issue.record("set-up not retried"); return }
    }
}
