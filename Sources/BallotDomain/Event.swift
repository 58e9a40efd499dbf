/// An accepted fact. Events are immutable: a correction is a new event that refers to the old one.
public enum Event: Sendable, Equatable {
    case electionDefined(ElectionDefinition)
    case nomineeAdded(election: ElectionID, nomination: Nomination)
    /// The public vote opened now (the record's timestamp), whatever the schedule said.
    case votingOpened(election: ElectionID)
    /// The public vote closed now (the record's timestamp), or at the scheduled end if earlier.
    case votingClosed(election: ElectionID)
    case voteCast(VoteCast)
    case voteInvalidated(VoteInvalidation)
    /// `key`: the juror's own signing key, when they have one (always, in an election that
    /// requires signatures).
    case jurorAdded(election: ElectionID, juror: JurorID, name: String, key: JurorKey? = nil)
    case juryScored(JuryScore)
    case juryClosed(election: ElectionID)
    case resultCertified(CertifiedResult)
    /// The result put to the jury for co-signing (an election with a `jury_quorum`).
    case resultProposed(ResultProposal)
    /// One juror co-signed the proposal; the quorum's last signature is the certification.
    case resultCosigned(ResultCosignature)
    /// A batch import finished; see `ImportRecord`.
    case importRecorded(ImportRecord)
    /// The daemon signed the ledger's state; see `Checkpoint`. Concerns no one election.
    case checkpointSigned(Checkpoint)

    public var kind: EventKind {
        switch self {
        case .electionDefined: .electionDefined
        case .nomineeAdded: .nomineeAdded
        case .votingOpened: .votingOpened
        case .votingClosed: .votingClosed
        case .voteCast: .voteCast
        case .voteInvalidated: .voteInvalidated
        case .jurorAdded: .jurorAdded
        case .juryScored: .juryScored
        case .juryClosed: .juryClosed
        case .resultCertified: .resultCertified
        case .resultProposed: .resultProposed
        case .resultCosigned: .resultCosigned
        case .importRecorded: .importRecorded
        case .checkpointSigned(let c): c.origin == nil ? .checkpointSigned : .checkpointNoted
        }
    }

    /// The election the event concerns; nil for a checkpoint, which concerns the whole ledger.
    public var election: ElectionID? {
        switch self {
        case .electionDefined(let d): d.id
        case .nomineeAdded(let e, _), .votingOpened(let e), .votingClosed(let e),
             .jurorAdded(let e, _, _, _), .juryClosed(let e): e
        case .voteCast(let v): v.election
        case .voteInvalidated(let v): v.election
        case .juryScored(let s): s.election
        case .resultCertified(let r): r.election
        case .resultProposed(let p): p.election
        case .resultCosigned(let c): c.election
        case .importRecorded(let i): i.election
        case .checkpointSigned: nil
        }
    }

    /// The `cast_at` of the vote the event counts or takes back: the votes-over-time bucket it
    /// changes. Nil for any other event.
    public var seriesTime: Timestamp? {
        switch self {
        case .voteCast(let v): v.castAt
        case .voteInvalidated(let x): x.castAt
        default: nil
        }
    }
}

/// The event type byte of the ledger format (docs/ledger-format.md). Never renumber.
public enum EventKind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case electionDefined = 1
    case nomineeAdded = 2
    case votingOpened = 3
    case votingClosed = 4
    case voteCast = 5
    case voteInvalidated = 6
    case jurorAdded = 7
    case juryScored = 8
    case juryClosed = 9
    case resultCertified = 10
    case importRecorded = 11
    case checkpointSigned = 12
    /// A checkpoint whose signature is over its C2SP note (`Checkpoint.origin`).
    case checkpointNoted = 13
    case resultProposed = 14
    case resultCosigned = 15

    public var description: String {
        switch self {
        case .electionDefined: "election.defined"
        case .nomineeAdded: "nominee.added"
        case .votingOpened: "voting.opened"
        case .votingClosed: "voting.closed"
        case .voteCast: "vote.cast"
        case .voteInvalidated: "vote.invalidated"
        case .jurorAdded: "juror.added"
        case .juryScored: "jury.scored"
        case .juryClosed: "jury.closed"
        case .resultCertified: "result.certified"
        case .importRecorded: "import.recorded"
        case .checkpointSigned: "checkpoint.signed"
        case .checkpointNoted: "checkpoint.noted"
        case .resultProposed: "result.proposed"
        case .resultCosigned: "result.cosigned"
        }
    }
}

public struct VoteCast: Sendable, Equatable {
    public var election: ElectionID
    public var nominee: NomineeID
    public var voter: VoterKey
    /// When the voter voted; this, not the record's time, is judged against the window.
    public var castAt: Timestamp
    /// Where the vote came from (`web`, `sms`, `paper`, …); may be empty.
    public var channel: String

    public init(election: ElectionID, nominee: NomineeID, voter: VoterKey, castAt: Timestamp, channel: String) {
        self.election = election
        self.nominee = nominee
        self.voter = voter
        self.castAt = castAt
        self.channel = channel
    }
}

/// Takes a vote out of the count. It repeats the vote's nominee and `cast_at` so that the
/// projections can be updated without reading the vote again; replay checks that they match.
public struct VoteInvalidation: Sendable, Equatable {
    public var election: ElectionID
    public var vote: UInt64
    public var nominee: NomineeID
    public var castAt: Timestamp
    public var reason: String

    public init(election: ElectionID, vote: UInt64, nominee: NomineeID, castAt: Timestamp, reason: String) {
        self.election = election
        self.vote = vote
        self.nominee = nominee
        self.castAt = castAt
        self.reason = reason
    }
}

/// One juror's score for one nominee on one criterion. A later score for the same three
/// supersedes the earlier one, whose sequence number it names.
public struct JuryScore: Sendable, Equatable {
    public var election: ElectionID
    public var juror: JurorID
    public var nominee: NomineeID
    public var criterion: CriterionID
    public var score: Int32
    /// The sequence number of the score this one amends, or nil for a first score.
    public var supersedes: UInt64?
    /// The juror's Ed25519 signature (64 bytes) of the score's statement, which names the
    /// ledger and all of the above (docs/ledger-format.md §3.2); nil for an unsigned score.
    public var signature: [UInt8]?

    public init(election: ElectionID, juror: JurorID, nominee: NomineeID, criterion: CriterionID,
                score: Int32, supersedes: UInt64? = nil, signature: [UInt8]? = nil) {
        self.signature = signature
        self.election = election
        self.juror = juror
        self.nominee = nominee
        self.criterion = criterion
        self.score = score
        self.supersedes = supersedes
    }
}

/// The certified outcome: the winner and the full order, as the ranking stood. Seals the election.
public struct CertifiedResult: Sendable, Equatable {
    public var election: ElectionID
    public var winner: NomineeID
    public var ranking: [NomineeID]
    /// The jury's written justification; empty when none was given.
    public var justification: String
    /// The jurors' co-signatures of the result's statement, in the order they were recorded
    /// (the last one certified it); empty in an election without a `jury_quorum`.
    public var cosignatures: [JurorSignature]
    /// The `result.proposed` event the co-signatures sign (their statement names it); 0 when
    /// there are none.
    public var proposal: UInt64

    public init(election: ElectionID, winner: NomineeID, ranking: [NomineeID], justification: String = "",
                cosignatures: [JurorSignature] = [], proposal: UInt64 = 0) {
        self.proposal = proposal
        self.election = election
        self.winner = winner
        self.ranking = ranking
        self.justification = justification
        self.cosignatures = cosignatures
    }
}

/// An event as the ledger holds it: its place, its time and who asked for it.
public struct RecordedEvent: Sendable, Equatable {
    public var seq: UInt64
    public var timestamp: Timestamp
    public var actor: Actor
    /// The client's idempotency key (an import's `vote_id`); empty when none was given.
    public var idempotencyKey: String
    public var event: Event

    public init(seq: UInt64, timestamp: Timestamp, actor: Actor, idempotencyKey: String = "", event: Event) {
        self.seq = seq
        self.timestamp = timestamp
        self.actor = actor
        self.idempotencyKey = idempotencyKey
        self.event = event
    }
}
