/// What a client asks for. The rules (`LedgerState.decide`) turn a command into an event or
/// refuse it with a `DomainError`.
public enum Command: Sendable, Equatable {
    case defineElection(ElectionDefinition)
    case addNominee(election: ElectionID, nomination: Nomination)
    case openVoting(election: ElectionID)
    case closeVoting(election: ElectionID)
    /// `castAt` nil means "now": a live vote is stamped with the ledger's clock.
    case castVote(election: ElectionID, nominee: NomineeID, voter: VoterKey, castAt: Timestamp?, channel: String)
    case invalidateVote(election: ElectionID, vote: UInt64, reason: String)
    case addJuror(election: ElectionID, juror: JurorID, name: String, key: JurorKey? = nil)
    /// `signed`: the juror's signature of the score's statement and the score it says it
    /// supersedes (nil: none), which must be the one it does.
    case scoreJury(election: ElectionID, juror: JurorID, nominee: NomineeID, criterion: CriterionID, score: Int32,
                   signed: SignedScore? = nil)
    case closeJury(election: ElectionID)
    /// Certifies the result, or in an election with a `jury_quorum` puts it to the jury.
    case certifyResult(election: ElectionID, justification: String = "")
    /// A juror co-signs the proposed result.
    case signResult(election: ElectionID, juror: JurorID, signature: SentSignature)
    /// Put a finished import on the record. The daemon sends it, not a client.
    case recordImport(ImportRecord)
    /// Sign and record a checkpoint of the ledger as it stands. The ledger layer turns it into
    /// `recordCheckpoint` (it holds the Merkle tree and the key); the rules never see it.
    case takeCheckpoint(Checkpoint.Reason)
    /// A checkpoint the ledger made, as replay reconstructs it.
    case recordCheckpoint(Checkpoint)

    /// The election the command addresses; nil for the ledger-wide checkpoint.
    public var election: ElectionID? {
        switch self {
        case .defineElection(let d): d.id
        case .addNominee(let e, _), .openVoting(let e), .closeVoting(let e), .castVote(let e, _, _, _, _),
             .invalidateVote(let e, _, _), .addJuror(let e, _, _, _), .scoreJury(let e, _, _, _, _, _),
             .closeJury(let e), .certifyResult(let e, _), .signResult(let e, _, _): e
        case .recordImport(let i): i.election
        case .takeCheckpoint, .recordCheckpoint: nil
        }
    }

    /// Whether this is `vote.cast`.
    public var isVote: Bool {
        if case .castVote = self { true } else { false }
    }

    /// The op name a person would recognise, for messages.
    public var name: String {
        switch self {
        case .defineElection: "election.define"
        case .addNominee: "nominee.add"
        case .openVoting: "election.open"
        case .closeVoting: "election.close"
        case .castVote: "vote.cast"
        case .invalidateVote: "vote.invalidate"
        case .addJuror: "juror.add"
        case .scoreJury: "jury.score"
        case .closeJury: "jury.close"
        case .certifyResult: "result.certify"
        case .signResult: "result.sign"
        case .recordImport: "import"
        case .takeCheckpoint, .recordCheckpoint: "checkpoint"
        }
    }

    /// The command that would have produced `event`: replay re-decides it and expects the same
    /// event back, so that every rule is checked again on every recorded event (a vote is
    /// checked by `checkVote` directly, the same rule).
    public init(reconstructing event: Event) {
        switch event {
        case .electionDefined(let d): self = .defineElection(d)
        case .nomineeAdded(let e, let n): self = .addNominee(election: e, nomination: n)
        case .votingOpened(let e): self = .openVoting(election: e)
        case .votingClosed(let e): self = .closeVoting(election: e)
        case .voteCast(let v):
            self = .castVote(election: v.election, nominee: v.nominee, voter: v.voter, castAt: v.castAt, channel: v.channel)
        case .voteInvalidated(let i): self = .invalidateVote(election: i.election, vote: i.vote, reason: i.reason)
        case .jurorAdded(let e, let j, let n, let key): self = .addJuror(election: e, juror: j, name: n, key: key)
        case .juryScored(let s):
            self = .scoreJury(election: s.election, juror: s.juror, nominee: s.nominee, criterion: s.criterion, score: s.score,
                              signed: s.signature.map { SignedScore(supersedes: s.supersedes, signature: SentSignature(keyID: nil, bytes: $0)) })
        case .juryClosed(let e): self = .closeJury(election: e)
        case .resultCertified(let r):
            // The quorum's last co-signature certified it; without a quorum, result.certify did.
            if let last = r.cosignatures.last {
                self = .signResult(election: r.election, juror: last.juror, signature: SentSignature(keyID: nil, bytes: last.bytes))
            } else {
                self = .certifyResult(election: r.election, justification: r.justification)
            }
        case .resultProposed(let p): self = .certifyResult(election: p.election, justification: p.justification)
        case .resultCosigned(let c):
            self = .signResult(election: c.election, juror: c.signature.juror, signature: SentSignature(keyID: nil, bytes: c.signature.bytes))
        case .importRecorded(let i): self = .recordImport(i)
        case .checkpointSigned(let c): self = .recordCheckpoint(c)
        }
    }

    /// Whether `event` is what this command asked for, comparing only what the client specified.
    /// Used for idempotency: a repeated key with a matching command returns the original event;
    /// one that does not match is a `conflict`.
    public func matches(_ event: Event) -> Bool {
        switch (self, event) {
        case (.castVote(let e, let n, let voter, let castAt, let channel), .voteCast(let v)):
            return e == v.election && n == v.nominee && voter == v.voter && channel == v.channel
                && (castAt == nil || castAt == v.castAt)
        case (.invalidateVote(let e, let vote, let reason), .voteInvalidated(let i)):
            return e == i.election && vote == i.vote && reason == i.reason
        case (.scoreJury(let e, let j, let n, let c, let s, let signed), .juryScored(let x)):
            return e == x.election && j == x.juror && n == x.nominee && c == x.criterion && s == x.score
                && signed?.signature.bytes == x.signature
        case (.certifyResult(let e, let j), .resultCertified(let r)):
            return e == r.election && j == r.justification
        case (.certifyResult(let e, let j), .resultProposed(let p)):
            return e == p.election && j == p.justification
        case (.signResult(let e, let j, let signature), .resultCertified(let r)):
            return e == r.election && r.cosignatures.last == JurorSignature(juror: j, bytes: signature.bytes)
        case (.signResult(let e, let j, let signature), .resultCosigned(let c)):
            return e == c.election && c.signature == JurorSignature(juror: j, bytes: signature.bytes)
        default:
            return self == Command(reconstructing: event)
        }
    }
}

/// A juror's signature of a score, as sent: the signature, and the score it says the new one
/// supersedes (nil: the first), which the signed statement names.
public struct SignedScore: Sendable, Equatable {
    public var supersedes: UInt64?
    public var signature: SentSignature

    public init(supersedes: UInt64?, signature: SentSignature) {
        self.supersedes = supersedes
        self.signature = signature
    }
}
