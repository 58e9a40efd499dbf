/// The rules: a command, decided against the current state, becomes an event or is refused.
/// Deciding changes nothing; the caller appends the event and then applies it.
extension LedgerState {
    /// Decides `command` at time `now`. Throws a `DomainError` when refused; errors thrown by
    /// `lookupVote` (which finds the vote a `vote.invalidate` names) propagate as they are.
    public func decide(_ command: Command, at now: Timestamp,
                       lookupVote: (UInt64) throws -> VoteCast?) throws -> Event {
        if case .defineElection(let definition) = command {
            try definition.validate()
            if electionList.count >= Limits.elections {
                throw DomainError(.badRequest, "the ledger already holds \(Limits.elections) elections, its limit")
            }
            if let i = ordinal(of: definition.id) {
                throw DomainError(.electionExists, "election '\(definition.id)' was already defined by event \(electionList[i].definedAt)")
            }
            return .electionDefined(definition)
        }
        switch command {
        case .takeCheckpoint:
            throw DomainError(.badRequest, "a checkpoint is taken by the ledger, which holds the Merkle tree and the signing key")
        case .recordCheckpoint(let checkpoint):
            try checkpoint.validate(in: self, seq: lastSeq + 1, at: now)
            return .checkpointSigned(checkpoint)
        default:
            break
        }
        guard let election = command.election, let i = ordinal(of: election) else {
            throw DomainError(.unknownElection, "there is no election '\(command.election?.value ?? "")'")
        }
        if case .recordImport(let record) = command {
            // Provenance changes no number, so it is recorded even after certification: the
            // rows of a late file were refused, and the record says so.
            try record.validate(before: lastSeq + 1)
            return .importRecorded(record)
        }
        if case .castVote(_, _, let voter, _, _) = command {
            let voted = hasVoted(voter, inElection: i, before: lastSeq + 1, lookupVote: lookupVote)
            return try electionList[i].decide(command, at: now, alreadyVoted: voted, lookupVote: lookupVote)
        }
        return try electionList[i].decide(command, at: now, alreadyVoted: false, lookupVote: lookupVote)
    }
}

extension ElectionState {
    /// Decides a command addressed to this election (see `LedgerState.decide`), told for a vote
    /// whether its voter has voted here already (the ledger keeps who has: `VoterRegister`).
    borrowing func decide(_ command: Command, at now: Timestamp, alreadyVoted: Bool,
                          lookupVote: (UInt64) throws -> VoteCast?) throws -> Event {
        try requireUnsealed()
        switch command {
        case .defineElection, .recordImport, .takeCheckpoint, .recordCheckpoint:
            preconditionFailure("LedgerState.decide handles election.define, import records and checkpoints")

        case .addNominee(let id, let n):
            try Limits.check(n.name, "nominee '\(n.id)' name", max: Limits.name)
            for (field, v) in [("goal_attainment_direct", n.goalAttainmentDirect),
                               ("goal_attainment_after_one_year", n.goalAttainmentAfterOneYear)]
            where !(v.isFinite && (0...100).contains(v)) {
                throw DomainError(.badRequest, "nominee '\(n.id)': \(field) is \(v); it is a percentage from 0 to 100")
            }
            if ordinal(of: n.id) != nil {
                throw DomainError(.nomineeExists, "'\(n.id)' is already a nominee of '\(id)'")
            }
            if nominees.count >= Limits.nominees {
                throw DomainError(.badRequest, "'\(id)' already has \(Limits.nominees) nominees, the limit")
            }
            if votesCast > 0 || votingOpenedAt != nil || votingClosedAt != nil {
                throw DomainError(.nominationsClosed, "nominations for '\(id)' closed when voting began")
            }
            let rule = definition.eligibility
            if n.goalAttainmentDirect < rule.minDirect || n.goalAttainmentAfterOneYear < rule.minAfterOneYear {
                throw DomainError(.notEligible, "\(n.name) ('\(n.id)') shows goal attainment of \(n.goalAttainmentDirect) % directly after the programme and \(n.goalAttainmentAfterOneYear) % one year after; the entry criterion for '\(id)' is at least \(rule.minDirect) % and \(rule.minAfterOneYear) %")
            }
            return .nomineeAdded(election: id, nomination: n)

        case .openVoting(let id):
            if votesCast > 0 {
                throw DomainError(.votingOpen, "votes have already been recorded in '\(id)'; its window can no longer be moved")
            }
            if votingClosedAt != nil || now >= definition.closesAt {
                throw DomainError(.votingClosed, "voting for '\(id)' is over (it closed at \(effectiveClosesAt)); it cannot be opened again")
            }
            if let opened = votingOpenedAt {
                throw DomainError(.votingOpen, "voting for '\(id)' was already opened at \(opened)")
            }
            return .votingOpened(election: id)

        case .closeVoting(let id):
            if let closed = votingClosedAt {
                throw DomainError(.votingClosed, "voting for '\(id)' was already closed at \(closed)")
            }
            return .votingClosed(election: id)

        case .castVote(let id, let nominee, let voter, let castAt, let channel):
            // Every rule for a vote lives in `checkVote`: replay calls it alone.
            let vote = VoteCast(election: id, nominee: nominee, voter: voter, castAt: castAt ?? now, channel: channel)
            try checkVote(vote, at: now, alreadyVoted: alreadyVoted)
            return .voteCast(vote)

        case .invalidateVote(let id, let seq, let reason):
            try Limits.check(reason, "vote.invalidate reason", max: Limits.text)
            guard let vote = try lookupVote(seq), vote.election == id else {
                throw DomainError(.unknownVote, "event \(seq) is not a vote in '\(id)'")
            }
            if isInvalidated(vote: seq) {
                throw DomainError(.alreadyInvalidated, "the vote at event \(seq) was already invalidated")
            }
            return .voteInvalidated(VoteInvalidation(election: id, vote: seq, nominee: vote.nominee, castAt: vote.castAt, reason: reason))

        case .addJuror(let id, let juror, let name, let key):
            try requireOpenJury()
            try Limits.check(name, "juror '\(juror)' name", max: Limits.name)
            if hasJuror(juror) { throw DomainError(.jurorExists, "'\(juror)' is already a juror of '\(id)'") }
            if jurors.count >= Limits.jurors {
                throw DomainError(.badRequest, "'\(id)' already has \(Limits.jurors) jurors, the limit")
            }
            if let key {
                try Limits.check(key.name, "juror '\(juror)' key name", max: Limits.name)
                if key.name.firstControlCharacter() != nil {
                    throw DomainError(.badRequest, "juror '\(juror)': the key name holds a control character")
                }
                if key.publicKey.isSmallOrderEd25519 {
                    throw DomainError(.badRequest, "juror '\(juror)': that key is a point of small order, under which one signature verifies for any statement; make a key with ballotctl jury keygen")
                }
                if !key.publicKey.isCanonicalEd25519 {
                    throw DomainError(.badRequest, "juror '\(juror)': that key is not a canonical Ed25519 encoding (its y is not below 2^255 - 19); make a key with ballotctl jury keygen")
                }
                if let other = jurors.first(where: { self.key(ofJuror: $0.id)?.publicKey == key.publicKey }) {
                    throw DomainError(.badRequest, "juror '\(juror)': that key is already juror '\(other.id)'s in '\(id)'; each juror signs with a key of their own")
                }
            } else if definition.jurySignatures.required || definition.jurySignatures.quorum > 0 {
                throw DomainError(.jurorSignature, "juror '\(juror)' has no key: '\(id)' requires its jurors' signatures, so juror.add needs the juror's public key (field 'key')")
            }
            return .jurorAdded(election: id, juror: juror, name: name, key: key)

        case .scoreJury(let id, let juror, let nominee, let criterion, let score, let signed):
            try requireOpenJury()
            guard hasJuror(juror) else { throw DomainError(.unknownJuror, "'\(juror)' is not a juror of '\(id)'") }
            guard ordinal(of: nominee) != nil else { throw unknownNominee(nominee) }
            guard definition.criterion(criterion) != nil else {
                let known = definition.criteria.map(\.id.value).joined(separator: ", ")
                throw DomainError(.unknownCriterion, "'\(criterion)' is not a criterion of '\(id)' (criteria: \(known))")
            }
            let scale = definition.scale
            guard scale.contains(score) else {
                throw DomainError(.scoreOutOfRange, "score \(score) is off the scale of '\(id)', \(scale.min) to \(scale.max)")
            }
            let previous = scores[ScoreSlot(juror: juror, nominee: nominee, criterion: criterion)]?.seq
            if let signed {
                try checkSignature(signed.signature, of: juror, for: "score")
                guard signed.supersedes == previous else {
                    let said = signed.supersedes.map { "event \($0)" } ?? "no earlier score"
                    let actual = previous.map { "event \($0)" } ?? "no earlier score"
                    throw DomainError(.jurorSignature, "juror '\(juror)' signed a score of '\(nominee)' on '\(criterion)' that supersedes \(said), but it would supersede \(actual): sign it again")
                }
            } else if definition.jurySignatures.required {
                throw DomainError(.jurorSignature, "the score of juror '\(juror)' for '\(nominee)' on '\(criterion)' is not signed; '\(id)' requires each score signed with its juror's key")
            }
            return .juryScored(JuryScore(election: id, juror: juror, nominee: nominee, criterion: criterion,
                                         score: score, supersedes: previous, signature: signed?.signature.bytes))

        case .closeJury(let id):
            try requireOpenJury()
            // A result needs every score, and a closed jury takes no more: closing with a gap
            // would leave an election that can never be certified.
            if let gap = JuryTable(self).firstMissing {
                throw DomainError(.juryIncomplete, "'\(gap.nominee)' has no jury score on criterion '\(gap.criterion)' yet; the jury of '\(id)' closes only once every nominee is scored on every criterion")
            }
            // Likewise a jury too small to co-sign its result: no juror can be added once closed.
            let keyed = jurors.count(where: { key(ofJuror: $0.id) != nil })
            if keyed < definition.jurySignatures.quorum {
                throw DomainError(.juryQuorum, "'\(id)' needs \(definition.jurySignatures.quorum) jurors to co-sign its result, and only \(keyed) have keys; add jurors before the jury closes")
            }
            return .juryClosed(election: id)

        case .certifyResult(let id, let justification):
            if !justification.isEmpty {
                try Limits.check(justification, "result.certify justification", max: Limits.justification)
                // Text a juror reads before signing: no control character may rewrite what a
                // terminal shows them (an escape sequence), so only newlines and tabs.
                if let bad = justification.firstControlCharacter(allowing: ["\n", "\t"]) {
                    throw DomainError(.badRequest, "result.certify justification holds the control character U+\(String(bad.value, radix: 16, uppercase: true)); only newlines and tabs are allowed")
                }
            }
            guard isVotingOver(at: now) else {
                throw DomainError(.votingOpen, "voting for '\(id)' is still open until \(effectiveClosesAt); close it first")
            }
            guard juryClosed else { throw DomainError(.juryOpen, "the jury of '\(id)' has not been closed") }
            let table = JuryTable(self)
            if let gap = table.firstMissing {
                throw DomainError(.juryIncomplete, "'\(gap.nominee)' has no jury score on criterion '\(gap.criterion)'; the result cannot be certified")
            }
            let ranking = Ranking(self)
            guard let winner = ranking.entries.first else {
                throw DomainError(.badRequest, "'\(id)' has no nominees; there is nothing to certify")
            }
            let order = ranking.entries.map(\.nominee)
            let quorum = definition.jurySignatures.quorum
            guard quorum > 0 else {
                return .resultCertified(CertifiedResult(election: id, winner: winner.nominee, ranking: order, justification: justification))
            }
            guard !justification.isEmpty else {
                throw DomainError(.badRequest, "result.certify of '\(id)' needs the jury's written justification (field 'justification'): its jurors co-sign it with the result")
            }
            let proposal = ResultProposal(election: id, winner: winner.nominee, ranking: order, justification: justification)
            if let pending = self.proposal, pending.result == proposal {
                throw DomainError(.juryQuorum, "the result of '\(id)' was put to the jury at event \(pending.seq) and awaits its co-signatures: \(cosignatures.count) of \(quorum)\(cosignatures.isEmpty ? "" : " (" + cosignatures.map(\.juror.value).joined(separator: ", ") + ")"); it is certified when the last of them signs (result.sign)")
            }
            // (A jury too small for its quorum did not close: see jury.close.)
            return .resultProposed(proposal)

        case .signResult(let id, let juror, let signature):
            let quorum = definition.jurySignatures.quorum
            guard quorum > 0 else {
                throw DomainError(.badRequest, "'\(id)' has no jury_quorum: its result is certified by result.certify alone")
            }
            guard let pending = proposal else {
                throw DomainError(.juryOpen, "no result of '\(id)' awaits the jury's co-signatures: result.certify puts it to them first")
            }
            guard hasJuror(juror) else { throw DomainError(.unknownJuror, "'\(juror)' is not a juror of '\(id)'") }
            try checkSignature(signature, of: juror, for: "co-signature")
            if cosignatures.contains(where: { $0.juror == juror }) {
                throw DomainError(.conflict, "juror '\(juror)' has already co-signed the result of '\(id)' proposed at event \(pending.seq)")
            }
            // The jury signs a ranking; if it has changed since (a vote invalidated), that one
            // is no longer the result.
            let order = Ranking(self).entries.map(\.nominee)
            guard order == pending.result.ranking else {
                throw DomainError(.conflict, "the ranking of '\(id)' has changed since the result was put to the jury at event \(pending.seq); result.certify puts the new one to them")
            }
            let cosignature = JurorSignature(juror: juror, bytes: signature.bytes)
            if cosignatures.count + 1 >= quorum {
                let p = pending.result
                return .resultCertified(CertifiedResult(election: id, winner: p.winner, ranking: p.ranking, justification: p.justification,
                                                        cosignatures: cosignatures + [cosignature], proposal: pending.seq))
            }
            return .resultCosigned(ResultCosignature(election: id, proposal: pending.seq, signature: cosignature))
        }
    }

    /// A key ID as signed-note writes it: eight hex digits.
    private static func hex8(_ id: UInt32) -> String {
        let digits = String(id, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }

    /// A juror's signature has the form of one by their recorded key (whether it verifies is
    /// checked where Ed25519 is: BallotFormat's `JurySignatures`, after the rules).
    private func checkSignature(_ signature: SentSignature, of juror: JurorID, for what: String) throws(DomainError) {
        guard let key = key(ofJuror: juror) else {
            throw DomainError(.jurorSignature, "juror '\(juror)' has no key recorded in '\(id)', so their \(what) cannot be signed")
        }
        if let keyID = signature.keyID, keyID != key.keyID {
            throw DomainError(.jurorSignature, "the \(what) of juror '\(juror)' is signed by another key (key ID \(Self.hex8(keyID))), not theirs, '\(key.name)' (key ID \(Self.hex8(key.keyID)))")
        }
        guard signature.bytes.count == 64 else {
            throw DomainError(.jurorSignature, "the \(what) signature of juror '\(juror)' is \(signature.bytes.count) bytes; an Ed25519 signature is 64")
        }
    }

    /// The rule for a vote, which `decide` applies to a new one and replay to a recorded one
    /// (without building a command: votes are nearly every event). The election is this one.
    func checkVote(_ vote: VoteCast, at now: Timestamp, alreadyVoted: Bool) throws(DomainError) {
        try requireUnsealed()
        guard let nominee = ordinal(of: vote.nominee) else { throw unknownNominee(vote.nominee) }
        // `election` is not read by the rule: this election is the one.
        try checkVote(ResolvedVote(election: -1, nominee: nominee, voter: vote.voter.prefix, castAt: vote.castAt,
                                   channelBytes: vote.channel.utf8.count), at: now, alreadyVoted: alreadyVoted)
    }

    /// The rule itself, for a vote whose nominee is already found (see `VoteRule`).
    func checkVote(_ vote: ResolvedVote, at now: Timestamp, alreadyVoted: Bool) throws(DomainError) {
        try voteRule.check(vote, at: now, alreadyVoted: alreadyVoted)
    }

    /// The election is not sealed (a vote's rule checks it again, from the same field).
    private func requireUnsealed() throws(DomainError) {
        if let result = voteRule.sealedBy { throw VoteRule.sealed(id, result) }
    }

    private func requireOpenJury() throws(DomainError) {
        if juryClosed { throw DomainError(.juryClosed, "the jury of '\(id)' is closed") }
    }

    private func unknownNominee(_ nominee: NomineeID) -> DomainError {
        let known = nominees.map(\.id.value).joined(separator: ", ")
        return DomainError(.unknownNominee, "'\(nominee)' is not a nominee of '\(id)' (nominees: \(known.isEmpty ? "none yet" : known))")
    }
}

/// The rule for a vote whose nominee is already found (see `ResolvedVote`; its `election` is
/// not read), told whether the voter had voted before this vote (replay's bulk path learns
/// that from adding the voter, see `ElectionState.replay`), with what it reads of the
/// election taken once: a replay checks a whole run of votes with one.
struct VoteRule: Sendable {
    let id: ElectionID
    var window: (opens: Timestamp, closes: Timestamp)
    /// The certified result, when the election is sealed.
    var sealedBy: CertifiedResult?

    init(id: ElectionID, window: (opens: Timestamp, closes: Timestamp)) {
        self.id = id
        self.window = window
    }

    func isInWindow(_ t: Timestamp) -> Bool { t >= window.opens && t < window.closes }

    func check(_ vote: ResolvedVote, at now: Timestamp, alreadyVoted: Bool) throws(DomainError) {
        if let result = sealedBy { throw Self.sealed(id, result) }
        let when = vote.castAt
        // A vote cannot come from the future. This also keeps every counted vote inside the
        // window for good: closing at T admits everything cast up to T.
        guard when <= now else {
            throw DomainError(.badRequest, "cast_at \(when) is later than the ledger's clock (\(now)); a vote cannot be cast in the future")
        }
        guard isInWindow(when) else {
            throw DomainError(.outsideWindow, "cast_at \(when) is outside the voting window of '\(id)', from \(window.opens) up to \(window.closes)")
        }
        guard !alreadyVoted else {
            throw DomainError(.duplicateVote, "this voter has already voted in '\(id)'; one vote per voter")
        }
        if vote.channelBytes > 0 { try Limits.check(bytes: vote.channelBytes, "channel", max: Limits.channel) }
    }

    static func sealed(_ id: ElectionID, _ result: CertifiedResult) -> DomainError {
        DomainError(.electionSealed, "the result of '\(id)' is certified (winner '\(result.winner)'); nothing more is accepted for it")
    }
}
