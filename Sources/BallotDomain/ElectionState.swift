/// Where one election stands after the events so far. Built only by `apply`, so the state after
/// a replay from event 1 is the state the live ledger had.
public struct ElectionState: Sendable {
    public let definition: ElectionDefinition
    public let definedAt: UInt64
    /// Nominees in the order they were nominated; an ordinal indexes `votes` and the series.
    public private(set) var nominees: [Nomination] = []
    private var nomineeOrdinals: [NomineeID: Int] = [:]
    /// The ids of `nominees`, in the same order, for the scan in `ordinal(of:)`.
    private var nomineeIDs: [NomineeID] = []
    public private(set) var jurors: [(id: JurorID, name: String)] = []
    private var jurorIDs: Set<JurorID> = []
    public private(set) var votingOpenedAt: Timestamp?
    public private(set) var votingClosedAt: Timestamp?
    public private(set) var juryClosed = false
    public private(set) var certified: CertifiedResult?
    /// Valid votes per nominee ordinal.
    public private(set) var votes: [Int] = []
    public private(set) var invalidatedVotes = 0
    /// Valid votes per series bucket start (microseconds) and nominee ordinal.
    public private(set) var series: [Int64: [Int]] = [:]
    /// The current score per (juror, nominee, criterion) and the event that set it.
    public private(set) var scores: [ScoreSlot: (score: Int32, seq: UInt64)] = [:]
    /// The last event that changed this election.
    public private(set) var lastSeq: UInt64
    private var voters = VoterSet()
    private var invalidated: Set<UInt64> = []

    init(definition: ElectionDefinition, seq: UInt64) {
        self.definition = definition
        self.definedAt = seq
        self.lastSeq = seq
    }

    public var id: ElectionID { definition.id }
    public var validVotes: Int { votes.reduce(0, +) }
    /// Every vote accepted, valid or since invalidated: the turnout, which is always public.
    public var votesCast: Int { voters.count }

    public func ordinal(of nominee: NomineeID) -> Int? { Self.ordinal(of: nominee, nomineeIDs, nomineeOrdinals) }

    /// Static so that `apply` (mutating) can call it on its fields without copying `self`.
    private static func ordinal(of nominee: NomineeID, _ ids: [NomineeID], _ ordinals: [NomineeID: Int]) -> Int? {
        // An award has a handful of nominees: comparing ids beats hashing one.
        if ids.count <= 16 { return ids.firstIndex(of: nominee) }
        return ordinals[nominee]
    }
    public func hasJuror(_ id: JurorID) -> Bool { jurorIDs.contains(id) }
    public func hasVoted(_ voter: VoterKey) -> Bool { voters.contains(voter.prefix) }
    public func isInvalidated(vote seq: UInt64) -> Bool { invalidated.contains(seq) }

    /// The window `cast_at` is judged against: the schedule, moved by an explicit open or close.
    public var effectiveOpensAt: Timestamp { votingOpenedAt ?? definition.opensAt }
    public var effectiveClosesAt: Timestamp {
        if let closed = votingClosedAt { return min(closed, definition.closesAt) }
        return definition.closesAt
    }

    public func isInWindow(_ t: Timestamp) -> Bool { t >= effectiveOpensAt && t < effectiveClosesAt }

    /// Voting is over once it was closed or its window has ended.
    public func isVotingOver(at now: Timestamp) -> Bool { votingClosedAt != nil || now >= effectiveClosesAt }

    /// Per-nominee standings may be shown: the election says so, or voting is over.
    public func standingsArePublic(at now: Timestamp) -> Bool { definition.publicStandings || isVotingOver(at: now) }

    mutating func apply(_ record: RecordedEvent) {
        lastSeq = record.seq
        switch record.event {
        case .electionDefined:
            break
        case .nomineeAdded(_, let n):
            nomineeOrdinals[n.id] = nominees.count
            nomineeIDs.append(n.id)
            nominees.append(n)
            votes.append(0)
        case .votingOpened:
            votingOpenedAt = record.timestamp
        case .votingClosed:
            votingClosedAt = record.timestamp
        case .voteCast(let v):
            guard let i = Self.ordinal(of: v.nominee, nomineeIDs, nomineeOrdinals) else { return }
            voters.insert(v.voter.prefix)
            votes[i] += 1
            let bucket = definition.bucket(of: v.castAt)
            series[bucket, default: Array(repeating: 0, count: nominees.count)][i] += 1
        case .voteInvalidated(let x):
            guard let i = Self.ordinal(of: x.nominee, nomineeIDs, nomineeOrdinals) else { return }
            invalidated.insert(x.vote)
            invalidatedVotes += 1
            votes[i] -= 1
            let bucket = definition.bucket(of: x.castAt)
            series[bucket, default: Array(repeating: 0, count: nominees.count)][i] -= 1
        case .jurorAdded(_, let j, let name):
            jurorIDs.insert(j)
            jurors.append((j, name))
        case .juryScored(let s):
            scores[ScoreSlot(juror: s.juror, nominee: s.nominee, criterion: s.criterion)] = (s.score, record.seq)
        case .juryClosed:
            juryClosed = true
        case .resultCertified(let r):
            certified = r
        }
    }
}

/// One cell of a juror's score sheet.
public struct ScoreSlot: Hashable, Sendable {
    public var juror: JurorID
    public var nominee: NomineeID
    public var criterion: CriterionID
    public init(juror: JurorID, nominee: NomineeID, criterion: CriterionID) {
        self.juror = juror
        self.nominee = nominee
        self.criterion = criterion
    }
}
