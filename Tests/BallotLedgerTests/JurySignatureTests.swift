import Testing
import Foundation
import TestSupport
@testable import BallotLedger
@testable import BallotFormat
@testable import BallotAudit
@testable import BallotDomain

/// A jury whose scores and result are signed with the jurors' own keys (issue 22): through the
/// real ledger, with real Ed25519 keys; every refusal writes nothing.
struct SignedJury {
    let dir = TemporaryDirectory("jury-signatures")
    let clock = ManualClock(Fixtures.now)
    let ledger: Ledger
    let id = Fixtures.slug("signed-2023")
    let other = Fixtures.slug("other-2023")
    let nominees = ["kinn", "bodo"].map(Fixtures.slug)
    let criterion = Fixtures.slug("results")
    let jurors = ["jury-a", "jury-b", "jury-c"].map(Fixtures.slug)
    let keys: [SignerKey]
    let justification = "Kinn viser hvordan god integrering blir til gode resultater."

    /// Two elections asking for signatures (the second to replay signatures into), quorum 2 of 3.
    init(quorum: Int = 2) throws {
        keys = try ["a", "b", "c"].map { try SignerKey(name: "juror-\($0)") }
        ledger = try Ledger(path: dir.sub("ledger"), options: Fixtures.options(), clock: clock, checkpointKey: CheckpointKey())
        for election in [id, other] {
            var definition = Fixtures.definition(election)
            definition.criteria = [Criterion(id: criterion, title: "Results", weight: 1)]
            definition.jurySignatures = JurySignaturePolicy(required: true, quorum: quorum)
            try must([Submission(.defineElection(definition), by: Fixtures.admin)]
                     + nominees.map { Submission(.addNominee(election: election, nomination: Fixtures.nomination($0.value)), by: Fixtures.admin) }
                     + zip(jurors, keys).map { j, k in
                         Submission(.addJuror(election: election, juror: j, name: j.value, key: k.verifierKey.jurorKey), by: Fixtures.admin)
                     })
        }
    }

    @discardableResult
    func must(_ batch: [Submission]) throws -> [Outcome] {
        let outcomes = try ledger.submit(batch)
        for (s, o) in zip(batch, outcomes) where o.receipt == nil { throw DaemonTestError("\(s.command.name) refused: \(o)") }
        return outcomes
    }

    func signature(_ key: SignerKey, _ statement: String) -> SentSignature {
        let line = key.sign(statement)
        return SentSignature(keyID: line.keyID, bytes: line.bytes)
    }

    /// A score signed by `signer` (juror `juror`'s own key unless told otherwise).
    func score(_ juror: Int, _ nominee: Int, _ score: Int32, supersedes: UInt64? = nil, election: ElectionID? = nil,
               signedFor: ElectionID? = nil, signer: Int? = nil, signedScore: Int32? = nil, inLedger: [UInt8]? = nil,
               by actor: Actor = Fixtures.juror) -> Submission {
        let e = election ?? id
        let statement = JuryStatement.score(JuryScore(election: signedFor ?? e, juror: jurors[juror], nominee: nominees[nominee],
                                                      criterion: criterion, score: signedScore ?? score, supersedes: supersedes),
                                            ledger: inLedger ?? ledger.ledgerID)
        return Submission(.scoreJury(election: e, juror: jurors[juror], nominee: nominees[nominee], criterion: criterion, score: score,
                                     signed: SignedScore(supersedes: supersedes, signature: signature(keys[signer ?? juror], statement))),
                          by: actor)
    }

    func refusal(_ submission: Submission) throws -> DomainError? {
        let before = ledger.size
        let outcome = try ledger.submit(submission)
        #expect(ledger.size == before, "a refusal wrote nothing")
        if case .refused(let error) = outcome { return error }
        return nil
    }

    /// Every juror scores every nominee, and voting and the jury are closed.
    func scoreAndClose() throws {
        for j in jurors.indices {
            for n in nominees.indices { try must([score(j, n, Int32(9 - 2 * n))]) }
        }
        clock.set("2022-11-12T09:00:00Z")
        try must([Submission(.closeVoting(election: id), by: Fixtures.admin), Submission(.closeJury(election: id), by: Fixtures.admin)])
    }

    /// A co-signature of the result awaiting the jury (or of `proposal`, proposed at `seq`).
    func cosign(_ juror: Int, signer: Int? = nil, proposal: ResultProposal? = nil, seq: UInt64? = nil) -> Submission {
        let pending = ledger.state[id]!.proposal
        let statement = JuryStatement.result(proposal ?? pending!.result, proposedAt: seq ?? pending!.seq, ledger: ledger.ledgerID)
        return Submission(.signResult(election: id, juror: jurors[juror], signature: signature(keys[signer ?? juror], statement)),
                          by: Fixtures.juror)
    }
}

@Suite struct JurySignatureTests {
    @Test func signedScoresAreTakenAndUnsignedForgedOrReplayedOnesRefused() throws {
        let jury = try SignedJury()
        let first = try #require(try jury.must([jury.score(0, 0, 7)])[0].receipt)
        guard case .juryScored(let stored)? = try jury.ledger.reader.record(first.seq)?.event else { Issue.record("no score"); return }
        #expect(stored.signature?.count == 64)
        #expect(jury.ledger.state[jury.id]!.isSigned(ScoreSlot(juror: jury.jurors[0], nominee: jury.nominees[0], criterion: jury.criterion)))

        // Unsigned, from a juror or an admin.
        let unsigned = Command.scoreJury(election: jury.id, juror: jury.jurors[1], nominee: jury.nominees[0], criterion: jury.criterion, score: 5)
        for actor in [Fixtures.juror, Fixtures.admin] {
            let error = try #require(try jury.refusal(Submission(unsigned, by: actor)))
            #expect(error.code == .jurorSignature && error.message.contains("'jury-b'") && error.message.contains("not signed"))
        }
        // Another juror's key; other bytes (a score of 9 signed, 5 sent); a replay into the
        // other election; an admin with the juror's signature is fine.
        let otherKey = try #require(try jury.refusal(jury.score(1, 0, 5, signer: 0)))
        #expect(otherKey.code == .jurorSignature && otherKey.message.contains("another key"), "\(otherKey)")
        let otherBytes = try #require(try jury.refusal(jury.score(1, 0, 5, signedScore: 9)))
        #expect(otherBytes.code == .jurorSignature && otherBytes.message.contains("does not verify"), "\(otherBytes)")
        let replayed = try #require(try jury.refusal(jury.score(1, 0, 5, election: jury.other, signedFor: jury.id)))
        #expect(replayed.code == .jurorSignature && replayed.message.contains("does not verify"))
        // A juror's signature from a rehearsal (another ledger, the same election id) is not one here.
        let rehearsal = try #require(try jury.refusal(jury.score(1, 0, 5, inLedger: Array(repeating: 0xEE, count: 16))))
        #expect(rehearsal.code == .jurorSignature && rehearsal.message.contains("does not verify"))
        try jury.must([jury.score(1, 0, 5, by: Fixtures.admin)])

        // An amendment names what it supersedes; the first signature cannot be replayed after it.
        let wrongSupersedes = try #require(try jury.refusal(jury.score(0, 0, 8)))
        #expect(wrongSupersedes.code == .jurorSignature && wrongSupersedes.message.contains("would supersede event \(first.seq)"))
        let amended = try #require(try jury.must([jury.score(0, 0, 8, supersedes: first.seq)])[0].receipt)
        let replay = try #require(try jury.refusal(jury.score(0, 0, 7)))
        #expect(replay.code == .jurorSignature && replay.message.contains("would supersede event \(amended.seq)"))
        #expect(jury.ledger.state[jury.id]!.scores[ScoreSlot(juror: jury.jurors[0], nominee: jury.nominees[0], criterion: jury.criterion)]?.score == 8)
    }

    @Test func aJurorsKeyIsTheirsAloneAndRequiredWhereSignaturesAre() throws {
        let jury = try SignedJury()
        let nokey = try #require(try jury.refusal(Submission(.addJuror(election: jury.id, juror: Fixtures.slug("jury-d"), name: "D"), by: Fixtures.admin)))
        #expect(nokey.code == .jurorSignature && nokey.message.contains("'jury-d' has no key"))
        let shared = try #require(try jury.refusal(Submission(.addJuror(election: jury.id, juror: Fixtures.slug("jury-d"), name: "D",
                                                                        key: jury.keys[0].verifierKey.jurorKey), by: Fixtures.admin)))
        #expect(shared.code == .badRequest && shared.message.contains("already juror 'jury-a'"))
        // The identity point: under it, one signature verifies for every statement.
        var identity = [UInt8](repeating: 0, count: 32)
        identity[0] = 1
        let weak = VerifierKey(name: "weak", type: SignedNote.ed25519, publicKey: identity.withUnsafeBytes { Digest32($0) }).jurorKey
        let refused = try #require(try jury.refusal(Submission(.addJuror(election: jury.id, juror: Fixtures.slug("jury-d"), name: "D", key: weak), by: Fixtures.admin)))
        #expect(refused.code == .badRequest && refused.message.contains("small order"))
        // y = p + 2: not canonical, so no keygen made it; and a key name with a control character.
        let nonCanonical = [0xEF] + [UInt8](repeating: 0xFF, count: 30) + [0x7F]
        let odd = VerifierKey(name: "odd", type: SignedNote.ed25519, publicKey: nonCanonical.withUnsafeBytes { Digest32($0) }).jurorKey
        let notCanonical = try #require(try jury.refusal(Submission(.addJuror(election: jury.id, juror: Fixtures.slug("jury-d"), name: "D", key: odd), by: Fixtures.admin)))
        #expect(notCanonical.code == .badRequest && notCanonical.message.contains("not a canonical"))
        var control = try SignerKey(name: "fine").verifierKey.jurorKey
        control.name = "a\u{0}b"
        #expect(try jury.refusal(Submission(.addJuror(election: jury.id, juror: Fixtures.slug("jury-d"), name: "D", key: control), by: Fixtures.admin))?.message.contains("control character") == true)
    }

    /// A jury that could never co-sign its result does not close: no juror can be added after.
    @Test func aJuryTooSmallForItsQuorumDoesNotClose() throws {
        let jury = try SignedJury(quorum: 4)
        for j in jury.jurors.indices {
            for n in jury.nominees.indices { try jury.must([jury.score(j, n, 7)]) }
        }
        let refused = try #require(try jury.refusal(Submission(.closeJury(election: jury.id), by: Fixtures.admin)))
        #expect(refused.code == .juryQuorum && refused.message.contains("needs 4 jurors") && refused.message.contains("only 3 have keys"))
        let fourth = try SignerKey(name: "juror-d")
        try jury.must([Submission(.addJuror(election: jury.id, juror: Fixtures.slug("jury-d"), name: "D", key: fourth.verifierKey.jurorKey), by: Fixtures.admin)])
        try jury.must([Submission(.closeJury(election: jury.id), by: Fixtures.admin)])
    }

    @Test func certificationWaitsForTheQuorumAndCompletesAtK() throws {
        let jury = try SignedJury()
        try jury.scoreAndClose()
        let escape = try #require(try jury.refusal(Submission(.certifyResult(election: jury.id, justification: "Fine.\u{1B}[3A\rRewritten"), by: Fixtures.admin)))
        #expect(escape.code == .badRequest && escape.message.contains("U+1B"))
        let bare = try #require(try jury.refusal(Submission(.certifyResult(election: jury.id), by: Fixtures.admin)))
        #expect(bare.code == .badRequest && bare.message.contains("justification"))
        let tooLong = try #require(try jury.refusal(Submission(.certifyResult(election: jury.id, justification: String(repeating: "x", count: Limits.justification + 1)), by: Fixtures.admin)))
        #expect(tooLong.code == .badRequest && tooLong.message.contains("at most \(Limits.justification)"))

        let proposed = try #require(try jury.must([Submission(.certifyResult(election: jury.id, justification: jury.justification), by: Fixtures.admin)])[0].receipt)
        #expect(try jury.ledger.reader.record(proposed.seq)?.event.kind == .resultProposed)
        #expect(jury.ledger.state[jury.id]!.certified == nil)
        let again = try #require(try jury.refusal(Submission(.certifyResult(election: jury.id, justification: jury.justification), by: Fixtures.admin)))
        #expect(again.code == .juryQuorum && again.message.contains("0 of 2"))

        let one = try #require(try jury.must([jury.cosign(0)])[0].receipt)
        #expect(try jury.ledger.reader.record(one.seq)?.event.kind == .resultCosigned)
        #expect(jury.ledger.state[jury.id]!.certified == nil, "one of two co-signatures does not certify")
        #expect(try jury.refusal(jury.cosign(0))?.code == .conflict)
        #expect(try jury.refusal(jury.cosign(1, signer: 2))?.code == .jurorSignature)
        var otherJustification = jury.ledger.state[jury.id]!.proposal!.result
        otherJustification.justification = "Another text."
        #expect(try jury.refusal(jury.cosign(1, proposal: otherJustification))?.code == .jurorSignature)
        let still = try #require(try jury.refusal(Submission(.certifyResult(election: jury.id, justification: jury.justification), by: Fixtures.admin)))
        #expect(still.code == .juryQuorum && still.message.contains("1 of 2 (jury-a)"))

        let certified = try #require(try jury.must([jury.cosign(1)])[0].receipt)
        guard case .resultCertified(let result)? = try jury.ledger.reader.record(certified.seq)?.event else { Issue.record("not certified"); return }
        #expect(result.cosignatures.map(\.juror) == [jury.jurors[0], jury.jurors[1]])
        #expect(result.justification == jury.justification && result.winner == jury.nominees[0])
        // The checkpoint a certification gets follows the co-signature that completed it, not the proposal.
        guard case .checkpointSigned(let checkpoint)? = try jury.ledger.reader.record(certified.seq + 1)?.event else { Issue.record("no checkpoint after the certification"); return }
        #expect(checkpoint.reason == .resultCertified)
        #expect(try jury.ledger.reader.record(proposed.seq + 1)?.event.kind == .resultCosigned)
        #expect(result.proposal == proposed.seq)
        #expect(try jury.refusal(jury.cosign(2, proposal: ResultProposal(election: jury.id, winner: result.winner, ranking: result.ranking,
                                                                         justification: result.justification), seq: proposed.seq))?.code == .electionSealed)
        let ranking = String(decoding: try #require(try jury.ledger.reader.projection(jury.id, .ranking)), as: UTF8.self)
        #expect(ranking.contains("\"cosigned_by\":[\"jury-a\",\"jury-b\"]") && ranking.contains(jury.justification))

        // The audit re-decides every event and checks every signature: all hold, and a kept
        // state written at the close gives the same election (keys, signed scores, result).
        let report = try Audit.verify(jury.ledger.reader)
        #expect(report.findings.isEmpty, "\(report.findings)")
        let image = jury.ledger.state[jury.id]!.image
        #expect(image.jurors.allSatisfy { $0.key != nil } && image.scores.allSatisfy(\.signed))
        jury.ledger.close()
        let reopened = try Ledger(path: jury.dir.sub("ledger"), options: Fixtures.options(check: .tail), clock: jury.clock)
        #expect(reopened.state[jury.id]?.image == image)
        reopened.close()
    }

    /// A quorum of one: the single co-signature is the certification (no result.cosigned).
    @Test func aQuorumOfOneCertifiesAtTheFirstCoSignature() throws {
        let jury = try SignedJury(quorum: 1)
        try jury.scoreAndClose()
        let proposed = try #require(try jury.must([Submission(.certifyResult(election: jury.id, justification: jury.justification), by: Fixtures.admin)])[0].receipt)
        let certified = try #require(try jury.must([jury.cosign(1)])[0].receipt)
        #expect(certified.seq == proposed.seq + 1)
        guard case .resultCertified(let result)? = try jury.ledger.reader.record(certified.seq)?.event else { Issue.record("not certified"); return }
        #expect(result.cosignatures.map(\.juror) == [jury.jurors[1]] && result.proposal == proposed.seq)
        let report = try Audit.verify(jury.ledger.reader)
        #expect(report.findings.isEmpty, "\(report.findings)")
        jury.ledger.close()
        #expect(try runPythonVerifier([jury.dir.sub("ledger")]).status == 0)
    }

    /// A ranking that changes after the proposal (a vote invalidated) is not the one the jury
    /// was asked to sign: co-signing stops until the admin proposes the new one.
    @Test func aChangedRankingNeedsANewProposal() throws {
        let jury = try SignedJury()
        let votes = try jury.must((0..<3).map { i in
            Submission(.castVote(election: jury.id, nominee: jury.nominees[1], voter: Fixtures.voter(i), castAt: nil, channel: "web"), by: Fixtures.importer)
        })
        try jury.scoreAndClose()
        try jury.must([Submission(.certifyResult(election: jury.id, justification: jury.justification), by: Fixtures.admin)])
        let before = jury.ledger.state[jury.id]!.proposal!.result
        for v in votes { try jury.must([Submission(.invalidateVote(election: jury.id, vote: v.receipt!.seq, reason: "test"), by: Fixtures.admin)]) }
        try #require(Ranking(jury.ledger.state[jury.id]!).entries.map(\.nominee) != before.ranking, "the invalidations change the winner")
        let changed = try #require(try jury.refusal(jury.cosign(0)))
        #expect(changed.code == .conflict && changed.message.contains("has changed"))
        let first = jury.ledger.state[jury.id]!.proposal!.seq
        // A newer proposal with another text, then this one again: a co-signature of the first
        // proposal (the same result and text) counts for neither, since it names its proposal.
        try jury.must([Submission(.certifyResult(election: jury.id, justification: "Another text."), by: Fixtures.admin)])
        try jury.must([Submission(.certifyResult(election: jury.id, justification: jury.justification), by: Fixtures.admin)])
        let current = jury.ledger.state[jury.id]!.proposal!
        #expect(current.seq > first)
        #expect(try jury.refusal(jury.cosign(0, proposal: current.result, seq: first))?.code == .jurorSignature)
        try jury.must([jury.cosign(0), jury.cosign(2)])
        #expect(jury.ledger.state[jury.id]!.certified?.cosignatures.map(\.juror) == [jury.jurors[0], jury.jurors[2]])
    }
}
