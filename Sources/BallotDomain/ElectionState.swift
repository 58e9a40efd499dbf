import BallotCollections

/// Where one election stands after the events so far. Built only by `apply`, so the state after
/// a replay from event 1 is the state the live ledger had.
///
/// A value with copy-on-write storage: copying one (which the compiler does freely, for example
/// around a call that takes a closure) costs one retain, not one per collection inside.
public struct ElectionState: Sendable {
    private var storage: Storage

    init(definition: ElectionDefinition, seq: UInt64) {
        storage = Storage(definition: definition, seq: seq)
    }

    public var definition: ElectionDefinition { storage.definition }
    /// The event that defined the election.
    public var definedAt: UInt64 { storage.definedAt }
    public var id: ElectionID { storage.definition.id }
    /// Nominees in the order they were nominated; an ordinal indexes `votes` and the series.
    public var nominees: [Nomination] { storage.nominees }
    public var jurors: [(id: JurorID, name: String)] { storage.jurors }
    /// A juror's own signing key, when `juror.add` recorded one.
    public func key(ofJuror id: JurorID) -> JurorKey? { storage.jurorKeys[id] }
    /// The result put to the jury and the event that did, while it awaits its co-signatures
    /// (nil once certified, or when none was proposed).
    public var proposal: (seq: UInt64, result: ResultProposal)? { storage.proposal }
    /// The co-signatures of `proposal` so far, in the order they were recorded.
    public var cosignatures: [JurorSignature] { storage.cosignatures }
    /// Whether the current score in `slot` was signed by its juror.
    public func isSigned(_ slot: ScoreSlot) -> Bool { storage.signedScores.contains(slot) }
    public var votingOpenedAt: Timestamp? { storage.votingOpenedAt }
    public var votingClosedAt: Timestamp? { storage.votingClosedAt }
    public var juryClosed: Bool { storage.juryClosed }
    /// Whether the result is certified, which seals the election.
    var isSealed: Bool { storage.rule.sealedBy != nil }
    public var certified: CertifiedResult? { storage.certified }
    /// Valid votes per nominee ordinal.
    public var votes: [Int] { storage.counts.votes }
    public var invalidatedVotes: Int { storage.invalidatedVotes }
    /// Valid votes per series bucket start (microseconds) and nominee ordinal: a row for every
    /// bucket a vote was counted or invalidated in, as long as `nominees`. Built on each call
    /// (see `seriesRow` for one bucket, `seriesBuckets` for their starts).
    public var series: [Int64: [Int]] { storage.counts.series }

    /// The starts of the buckets `series` has rows for, in no particular order.
    public var seriesBuckets: [Int64] { storage.counts.seriesBuckets }

    /// How many buckets the series' rows by number cover, and the room for counts in each (tests).
    var seriesDenseBuckets: Int { storage.counts.hasRow.count }
    var seriesRowStride: Int { storage.counts.rowStride }

    /// The row of `series` for the bucket starting at `bucket`, nil when it has none.
    public func seriesRow(_ bucket: Int64) -> [Int]? { storage.counts.seriesRow(bucket) }
    /// The current score per (juror, nominee, criterion) and the event that set it.
    public var scores: [ScoreSlot: (score: Int32, seq: UInt64)] { storage.scores }
    /// The last event that changed this election.
    public var lastSeq: UInt64 { storage.lastSeq }

    public var validVotes: Int { storage.counts.votes.reduce(0, +) }
    /// Every vote accepted, valid or since invalidated: the turnout, which is always public.
    public var votesCast: Int { storage.counts.votesCast }

    public func ordinal(of nominee: NomineeID) -> Int? { storage.ordinal(of: nominee) }
    public func hasJuror(_ id: JurorID) -> Bool { storage.jurorIDs.contains(id) }
    public func isInvalidated(vote seq: UInt64) -> Bool { storage.invalidated.contains(seq) }

    /// The window `cast_at` is judged against, half-open (see `ElectionDefinition`): the
    /// schedule, moved by an explicit open (only before any vote) or close. Closing at T admits
    /// votes cast at T itself, so a vote accepted before the close stays inside.
    public var effectiveOpensAt: Timestamp { storage.rule.window.opens }
    public var effectiveClosesAt: Timestamp { storage.rule.window.closes }

    public func isInWindow(_ t: Timestamp) -> Bool { storage.rule.isInWindow(t) }

    /// What the rule for a vote reads of this election (one read of the storage).
    var voteRule: VoteRule { storage.rule }

    public func isVotingOver(at now: Timestamp) -> Bool { storage.definition.isVotingOver(at: now, closedAt: storage.votingClosedAt) }

    /// A small summary, detached from this state's storage (see `ElectionStatus`).
    public var status: ElectionStatus {
        ElectionStatus(definition: storage.definition, nominees: storage.nominees, jurors: storage.jurors.map(\.id),
                       votingOpenedAt: storage.votingOpenedAt, votingClosedAt: storage.votingClosedAt,
                       juryClosed: storage.juryClosed, certified: storage.certified,
                       votesCast: storage.counts.votesCast, lastSeq: storage.lastSeq)
    }

    mutating func apply(_ record: RecordedEvent) {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        storage.apply(record)
    }

    /// `apply` of the vote at event `seq` for the nominee at position `nominee` (found by the
    /// caller), counted in the turnout when `newVoter`.
    mutating func applyVote(castAt: Timestamp, nominee: Int, seq: UInt64, newVoter: Bool) {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        storage.lastSeq = seq
        storage.counts.vote(nominee: nominee, castAt: castAt, newVoter: newVoter)
    }

    /// This state as it is, kept by a batch before it first changes the election, so that a
    /// failed transaction can put it back (`restore(_:)`): a copy that shares every collection.
    struct Saved: @unchecked Sendable {
        fileprivate let storage: Storage
    }

    func saved() -> Saved { Saved(storage: storage.copy()) }

    mutating func restore(_ saved: Saved) { storage = saved.storage }

    /// See `LedgerState.replay(_:inElection:lookupVote:refused:)`: `checkVote`, then `apply`,
    /// with one probe of the voter table per vote (adding the voter says whether an entry was
    /// there; `isTheirs(tag, voter)` says whether it is an earlier vote of theirs). `changed`,
    /// when given, is told of each entry of the table the run writes: its key and the tag it
    /// held before (nil for a key that was not there), for a journal.
    mutating func replay(_ run: [RecordedVote], voters: VoterRegister, election: Int,
                         isTheirs: (UInt64, Key128) -> Bool, refused: (Int, DomainError) -> Void,
                         changed: ((Key128, UInt32?) -> Void)?) {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        // The counts are taken out for the run and put back after: one access to the storage
        // each way, not several per vote; the rule reads a snapshot of what it needs.
        var counts = ElectionCounts(bucketOrigin: storage.counts.bucketOrigin, bucketWidth: 1)
        swap(&counts, &storage.counts)
        defer { swap(&counts, &storage.counts) }
        let rule = voteRule
        // Every voter added in one call, which reads all their slots first so that the misses
        // overlap (see `TaggedKeySet.prefetch`): a load a few votes ahead, in a loop over the
        // votes, was slower (its result must land before it retires).
        let mixer = VoterRegister.mixer(election: election)
        voters.table.insert(run.lazy.map { VoterRegister.key($0.vote.voter, mixing: mixer) },
                            tags: { VoterRegister.tag(run[$0].seq) }) { i, previous in
            let vote = run[i].vote
            let alreadyVoted = previous.map {
                VoterRegister.isEarlierVote(tag: $0, before: run[i].seq) { isTheirs($0, vote.voter) }
            } ?? false
            do throws(DomainError) {
                try rule.check(vote, at: run[i].recordedAt, alreadyVoted: alreadyVoted)
            } catch {
                refused(i, error)
            }
            counts.vote(nominee: vote.nominee, castAt: vote.castAt, newVoter: !alreadyVoted)
            if let changed, previous == nil || !alreadyVoted {
                changed(VoterRegister.key(vote.voter, mixing: mixer), previous)
            }
            return !alreadyVoted
        }
        storage.lastSeq = run[run.count - 1].seq
    }

    /// The fields, in one object so that copying the state is cheap; mutated only when unique.
    /// What every vote reads and writes is in `counts`, one value, so that a vote is one access
    /// to the storage (a class's fields are checked for overlapping access at run time, on
    /// every access), and a replay takes it out for a whole run.
    fileprivate final class Storage: @unchecked Sendable {
        let definition: ElectionDefinition
        let definedAt: UInt64
        /// What the rule for a vote reads: the effective window, half-open (see
        /// `ElectionState.effectiveOpensAt`), and the result that sealed the election.
        var rule: VoteRule
        var nominees: [Nomination] = []
        var nomineeIndex = OrdinalIndex()
        var jurors: [(id: JurorID, name: String)] = []
        var jurorIDs: Set<JurorID> = []
        var jurorKeys: [JurorID: JurorKey] = [:]
        var proposal: (seq: UInt64, result: ResultProposal)?
        var cosignatures: [JurorSignature] = []
        var signedScores: Set<ScoreSlot> = []
        var votingOpenedAt: Timestamp?
        var votingClosedAt: Timestamp?
        var juryClosed = false
        var certified: CertifiedResult?
        var counts: ElectionCounts
        var invalidatedVotes = 0
        var scores: [ScoreSlot: (score: Int32, seq: UInt64)] = [:]
        var lastSeq: UInt64
        var invalidated: Set<UInt64> = []

        init(definition: ElectionDefinition, seq: UInt64) {
            self.definition = definition
            self.definedAt = seq
            self.lastSeq = seq
            rule = VoteRule(id: definition.id, window: (definition.effectiveOpensAt(openedAt: nil), definition.effectiveClosesAt(closedAt: nil)))
            counts = ElectionCounts(bucketOrigin: definition.opensAt, bucketWidth: definition.bucketMicroseconds)
        }

        /// A copy that shares every collection until one side changes it.
        func copy() -> Storage {
            let c = Storage(definition: definition, seq: definedAt)
            c.nominees = nominees
            c.nomineeIndex = nomineeIndex
            c.jurors = jurors
            c.jurorIDs = jurorIDs
            c.jurorKeys = jurorKeys
            c.proposal = proposal
            c.cosignatures = cosignatures
            c.signedScores = signedScores
            c.votingOpenedAt = votingOpenedAt
            c.votingClosedAt = votingClosedAt
            c.rule = rule
            c.juryClosed = juryClosed
            c.certified = certified
            c.counts = counts
            c.invalidatedVotes = invalidatedVotes
            c.scores = scores
            c.lastSeq = lastSeq
            c.invalidated = invalidated
            return c
        }

        func ordinal(of nominee: NomineeID) -> Int? { nomineeIndex.ordinal(of: nominee) }

        func apply(_ record: RecordedEvent) {
            lastSeq = record.seq
            switch record.event {
            case .electionDefined:
                break
            case .nomineeAdded(_, let n):
                nomineeIndex.append(n.id)
                nominees.append(n)
                counts.addNominee()
            case .votingOpened:
                votingOpenedAt = record.timestamp
                rule.window.opens = definition.effectiveOpensAt(openedAt: record.timestamp)
            case .votingClosed:
                votingClosedAt = record.timestamp
                rule.window.closes = definition.effectiveClosesAt(closedAt: record.timestamp)
            case .voteCast(let v):
                guard let i = ordinal(of: v.nominee) else { return }
                counts.vote(nominee: i, castAt: v.castAt, newVoter: true)
            case .voteInvalidated(let x):
                guard let i = ordinal(of: x.nominee) else { return }
                invalidated.insert(x.vote)
                invalidatedVotes += 1
                counts.votes[i] -= 1
                counts.count(x.castAt, nominee: i, by: -1)
            case .jurorAdded(_, let j, let name, let key):
                jurorIDs.insert(j)
                jurors.append((j, name))
                // A juror's key is the first recorded: a second juror.added for them (which the
                // rules refuse, and an audit reports) must not re-key the signatures after it.
                if let key, jurorKeys[j] == nil { jurorKeys[j] = key }
            case .juryScored(let s):
                let slot = ScoreSlot(juror: s.juror, nominee: s.nominee, criterion: s.criterion)
                scores[slot] = (s.score, record.seq)
                if s.signature != nil { signedScores.insert(slot) } else { signedScores.remove(slot) }
            case .juryClosed:
                juryClosed = true
            case .resultCertified(let r):
                certified = r
                rule.sealedBy = r
                proposal = nil
                cosignatures = []
            case .resultProposed(let p):
                proposal = (record.seq, p)
                cosignatures = []
            case .resultCosigned(let c):
                cosignatures.append(c.signature)
            case .importRecorded, .checkpointSigned:
                break
            }
        }

    }
}

// What a state that outlives the process keeps of an election (docs/architecture.md, "What is
// kept between starts"): its facts as plain values, from which `init(image:)` builds the same
// state, counts, series and all.
extension ElectionState {
    public struct Image: Sendable, Equatable {
        public var definition: ElectionDefinition
        public var definedAt: UInt64
        public var lastSeq: UInt64
        public var nominees: [Nomination]
        public var jurors: [Juror]
        public var votingOpenedAt: Timestamp?
        public var votingClosedAt: Timestamp?
        public var juryClosed: Bool
        public var certified: CertifiedResult?
        /// The result awaiting co-signatures, and the event that proposed it.
        public var proposal: Proposal?
        /// The co-signatures of `proposal` so far, in the order recorded.
        public var cosignatures: [JurorSignature]
        /// Valid votes per nominee, in nomination order.
        public var votes: [Int]
        public var votesCast: Int
        public var invalidatedVotes: Int
        /// The invalidated votes' sequence numbers, ascending.
        public var invalidated: [UInt64]
        /// Every series row, by bucket start, ascending; a row may be shorter than `nominees`.
        public var series: [SeriesRow]
        /// Every current score, ordered by juror, nominee and criterion.
        public var scores: [Score]

        public struct Juror: Sendable, Equatable {
            public var id: JurorID
            public var name: String
            public var key: JurorKey?
            public init(id: JurorID, name: String, key: JurorKey? = nil) { self.id = id; self.name = name; self.key = key }
        }

        public struct Proposal: Sendable, Equatable {
            public var seq: UInt64
            public var result: ResultProposal
            public init(seq: UInt64, result: ResultProposal) { self.seq = seq; self.result = result }
        }

        public struct SeriesRow: Sendable, Equatable {
            public var bucket: Int64
            public var counts: [Int]
            public init(bucket: Int64, counts: [Int]) { self.bucket = bucket; self.counts = counts }
        }

        public struct Score: Sendable, Equatable {
            public var slot: ScoreSlot
            public var score: Int32
            public var seq: UInt64
            public var signed: Bool
            public init(slot: ScoreSlot, score: Int32, seq: UInt64, signed: Bool = false) {
                self.slot = slot; self.score = score; self.seq = seq; self.signed = signed
            }
        }

        public init(definition: ElectionDefinition, definedAt: UInt64, lastSeq: UInt64, nominees: [Nomination], jurors: [Juror],
                    votingOpenedAt: Timestamp?, votingClosedAt: Timestamp?, juryClosed: Bool, certified: CertifiedResult?,
                    proposal: Proposal? = nil, cosignatures: [JurorSignature] = [], votes: [Int], votesCast: Int, invalidatedVotes: Int, invalidated: [UInt64], series: [SeriesRow],
                    scores: [Score]) {
            self.definition = definition
            self.definedAt = definedAt
            self.lastSeq = lastSeq
            self.nominees = nominees
            self.jurors = jurors
            self.votingOpenedAt = votingOpenedAt
            self.votingClosedAt = votingClosedAt
            self.juryClosed = juryClosed
            self.certified = certified
            self.proposal = proposal
            self.cosignatures = cosignatures
            self.votes = votes
            self.votesCast = votesCast
            self.invalidatedVotes = invalidatedVotes
            self.invalidated = invalidated
            self.series = series
            self.scores = scores
        }
    }

    public var image: Image {
        let s = storage
        let rows = s.counts.seriesBuckets.sorted().map { Image.SeriesRow(bucket: $0, counts: s.counts.seriesRow($0) ?? []) }
        let scores = s.scores.map { Image.Score(slot: $0.key, score: $0.value.score, seq: $0.value.seq, signed: s.signedScores.contains($0.key)) }
            .sorted { ($0.slot.juror, $0.slot.nominee, $0.slot.criterion) < ($1.slot.juror, $1.slot.nominee, $1.slot.criterion) }
        return Image(definition: s.definition, definedAt: s.definedAt, lastSeq: s.lastSeq, nominees: s.nominees,
                     jurors: s.jurors.map { Image.Juror(id: $0.id, name: $0.name, key: s.jurorKeys[$0.id]) }, votingOpenedAt: s.votingOpenedAt,
                     votingClosedAt: s.votingClosedAt, juryClosed: s.juryClosed, certified: s.certified,
                     proposal: s.proposal.map { Image.Proposal(seq: $0.seq, result: $0.result) }, cosignatures: s.cosignatures,
                     votes: s.counts.votes,
                     votesCast: s.counts.votesCast, invalidatedVotes: s.invalidatedVotes, invalidated: s.invalidated.sorted(),
                     series: rows, scores: scores)
    }

    /// The state `image` describes. Throws when it does not hold together (counts for nominees
    /// it does not have): an image comes from a file, which may be damaged.
    public init(image: Image) throws(DomainError) {
        func broken(_ what: String) -> DomainError {
            DomainError(.corruptRecord, "the kept state of election '\(image.definition.id)' \(what)")
        }
        guard image.votes.count == image.nominees.count else { throw broken("has \(image.votes.count) counts for \(image.nominees.count) nominees") }
        do {
            try image.definition.validate()
        } catch {
            throw broken("has a definition the rules refuse: \(error.message)")
        }
        let s = Storage(definition: image.definition, seq: image.definedAt)
        for nomination in image.nominees {
            s.apply(RecordedEvent(seq: image.definedAt, timestamp: Timestamp(microseconds: 0), actor: .system, idempotencyKey: "",
                                  event: .nomineeAdded(election: image.definition.id, nomination: nomination)))
        }
        for juror in image.jurors {
            s.jurorIDs.insert(juror.id)
            s.jurors.append((juror.id, juror.name))
            if let key = juror.key { s.jurorKeys[juror.id] = key }
        }
        s.proposal = image.proposal.map { ($0.seq, $0.result) }
        s.cosignatures = image.cosignatures
        s.votingOpenedAt = image.votingOpenedAt
        s.votingClosedAt = image.votingClosedAt
        s.rule.window = (image.definition.effectiveOpensAt(openedAt: image.votingOpenedAt),
                    image.definition.effectiveClosesAt(closedAt: image.votingClosedAt))
        s.juryClosed = image.juryClosed
        s.certified = image.certified
        s.rule.sealedBy = image.certified
        s.counts.votes = image.votes
        s.counts.votesCast = image.votesCast
        s.invalidatedVotes = image.invalidatedVotes
        s.invalidated = Set(image.invalidated)
        for row in image.series {
            guard row.counts.count <= image.nominees.count, !row.counts.isEmpty else { throw broken("has a series row of \(row.counts.count) counts") }
            guard image.definition.bucket(of: Timestamp(microseconds: row.bucket)) == row.bucket else {
                throw broken("has a series row at \(row.bucket), which is not the start of a bucket")
            }
            for (i, n) in row.counts.enumerated() { s.counts.count(Timestamp(microseconds: row.bucket), nominee: i, by: n) }
        }
        for score in image.scores {
            s.scores[score.slot] = (score.score, score.seq)
            if score.signed { s.signedScores.insert(score.slot) }
        }
        s.lastSeq = image.lastSeq
        storage = s
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
