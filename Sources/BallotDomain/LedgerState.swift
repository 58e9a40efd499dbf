public import BallotCollections

/// The state of every election, folded from the events in sequence order.
public struct LedgerState: Sendable {
    /// Elections in the order they were defined.
    private(set) var electionList: [ElectionState] = []
    private var index = OrdinalIndex()
    /// The sequence number of the last event applied (0 before the first).
    public private(set) var lastSeq: UInt64 = 0
    /// The latest checkpoint and the sequence number of its record.
    public private(set) var lastCheckpoint: (seq: UInt64, checkpoint: Checkpoint)?
    /// Who has voted, in every election (shared by copies: see `VoterRegister`).
    public private(set) var voters: VoterRegister

    /// An empty state, its voters kept in `voters` (in memory unless the caller gives a table
    /// kept in a file).
    public init(voters: TaggedKeySet = TaggedKeySet()) { self.voters = VoterRegister(voters) }

    /// A copy of an election's state.
    public subscript(election: ElectionID) -> ElectionState? { ordinal(of: election).map { electionList[$0] } }

    /// Every election, in the order defined.
    public var elections: [ElectionState] { electionList }

    func ordinal(of election: ElectionID) -> Int? { index.ordinal(of: election) }

    /// The start of the votes-over-time bucket that `castAt` falls in, for `election`.
    public func seriesBucket(of castAt: Timestamp, in election: ElectionID) -> Int64? {
        guard let i = ordinal(of: election) else { return nil }
        return electionList[i].definition.bucket(of: castAt)
    }

    /// Folds one recorded event in. Events must come in sequence order and should have passed
    /// `decide` (the live path) or `check` (replay); an event for an unknown election is ignored.
    ///
    /// A fold that trusts the events (a replay to a point in time): a vote whose voter is in the
    /// table under an earlier event counts as a repeat, without reading that event (it is
    /// counted for its nominee, as the ledger holds it, but not again in the turnout). A table
    /// that may hold keys of batches that never committed (one kept between starts) is applied
    /// to with `apply(_:checked:)` or `apply(_:journal:)`, which know.
    public mutating func apply(_ record: RecordedEvent) {
        _ = applyReturningVoter(record, voterIsNew: nil)
    }

    /// `apply` of an event `check` has just judged (`refusal`: what it found, nil for none), so
    /// that a vote's voter is known to be new, or to have voted (`duplicate_vote`), whatever
    /// the voter table holds (see `VoterRegister`).
    public mutating func apply(_ record: RecordedEvent, checked refusal: DomainError?) {
        _ = applyReturningVoter(record, voterIsNew: refusal?.code != .duplicateVote)
    }

    /// `apply`; for a vote, what its voter's entry held before (see `VoterRegister.add`).
    /// `voterIsNew`, when known (the event was just decided or checked against this state): an
    /// entry for the voter is taken over, or the vote is a repeat; when nil, an entry under an
    /// earlier event makes it a repeat.
    private mutating func applyReturningVoter(_ record: RecordedEvent, voterIsNew: Bool?) -> (key: Key128, previous: UInt32?)? {
        lastSeq = record.seq
        switch record.event {
        case .electionDefined(let definition):
            index.append(definition.id)
            electionList.append(ElectionState(definition: definition, seq: record.seq))
        case .checkpointSigned(let checkpoint):
            lastCheckpoint = (record.seq, checkpoint)
        case .voteCast(let vote):
            guard let i = ordinal(of: vote.election) else { return nil }
            return applyVote(vote, of: record, inElection: i, voterIsNew: voterIsNew)
        default:
            guard let election = record.event.election, let i = ordinal(of: election) else { return nil }
            electionList[i].apply(record)
        }
        return nil
    }

    /// `applyReturningVoter` of `vote`, the event of `record`, in the election at position `i`.
    private mutating func applyVote(_ vote: VoteCast, of record: RecordedEvent, inElection i: Int,
                                    voterIsNew: Bool?) -> (key: Key128, previous: UInt32?)? {
        let seq = record.seq
        guard let nominee = electionList[i].ordinal(of: vote.nominee) else {
            electionList[i].apply(record)  // a vote for no nominee (only a tampered ledger's) counts for nobody
            return nil
        }
        let added = voters.add(vote.voter.prefix, election: i, seq: seq, takingOver: voterIsNew == true)
        let isNew = voterIsNew ?? (added.previous.map { $0 >= VoterRegister.tag(seq) } ?? true)
        electionList[i].applyVote(castAt: vote.castAt, nominee: nominee, seq: seq, newVoter: isNew)
        return added
    }

    /// What a batch of events changed, kept so that a failed transaction can take it back
    /// without a replay (`apply(_:journal:)`, `takeBack(_:)`): the ledger's own fields, each
    /// election's state as it was before the batch first changed it, and what the batch did to
    /// the voter table. Elections defined by the batch are simply dropped.
    public struct Journal: Sendable {
        fileprivate let elections: Int
        fileprivate let index: OrdinalIndex
        fileprivate let lastSeq: UInt64
        fileprivate let lastCheckpoint: (seq: UInt64, checkpoint: Checkpoint)?
        fileprivate var saved: [ElectionState.Saved?]
        fileprivate var voters: [(key: Key128, previous: UInt32?)] = []
    }

    /// A journal of what the events applied from now on change, with room for the voters of
    /// `events` events.
    public func journal(events: Int = 0) -> Journal {
        var journal = Journal(elections: electionList.count, index: index, lastSeq: lastSeq, lastCheckpoint: lastCheckpoint,
                              saved: Array(repeating: nil, count: electionList.count))
        journal.voters.reserveCapacity(events)
        return journal
    }

    /// `apply` of an event just decided against this state, noting in `journal` what it changes.
    public mutating func apply(_ record: RecordedEvent, journal: inout Journal) {
        // A vote, nearly every event, is looked at once: its election found once.
        if case .voteCast(let vote) = record.event {
            lastSeq = record.seq
            guard let i = ordinal(of: vote.election) else { return }
            if i < journal.elections, journal.saved[i] == nil { journal.saved[i] = electionList[i].saved() }
            if let voter = applyVote(vote, of: record, inElection: i, voterIsNew: true) { journal.voters.append(voter) }
            return
        }
        if let election = record.event.election, let i = ordinal(of: election), i < journal.elections,
           journal.saved[i] == nil {
            journal.saved[i] = electionList[i].saved()
        }
        _ = applyReturningVoter(record, voterIsNew: true)
    }

    /// Takes back every event applied since `journal` was made: the state is then what it was.
    public mutating func takeBack(_ journal: Journal) {
        electionList.removeLast(electionList.count - journal.elections)
        index = journal.index
        lastSeq = journal.lastSeq
        lastCheckpoint = journal.lastCheckpoint
        for (key, previous) in journal.voters.reversed() { voters.takeBack(key, previous: previous) }
        for (i, saved) in journal.saved.enumerated() {
            guard let saved else { continue }
            electionList[i].restore(saved)
        }
    }

    /// Brings into cache the slots of an election's voter table that these voters (the first
    /// 128 bits of their keys) will look up, before their votes are checked and applied one at
    /// a time: in batches of thousands, the table misses then overlap (see
    /// `TaggedKeySet.prefetch`). Changes nothing that can be seen.
    public func prefetchVoters(_ voters: [Key128], in election: ElectionID) {
        guard let i = ordinal(of: election) else { return }
        self.voters.table.prefetch(voters.lazy.map { VoterRegister.key($0, election: i) })
    }

    /// Makes room in the voter table for `count` more voters: the one step of applying votes
    /// that can fail (a table kept in a file whose disk is full), so a batch takes it first.
    public func reserveVoters(_ count: Int) throws(TableError) {
        try voters.table.reserve(count)
    }

    /// A copy for a dry run: what it applies changes neither this state nor its voter table.
    public func forked() -> LedgerState {
        var copy = self
        copy.voters = voters.forked()
        return copy
    }

    /// Checks a recorded event against the rules as they stood before it: the command it
    /// answers is decided again at the record's time and must give the same event back. A
    /// vote, nearly every event, goes straight to `ElectionState.checkVote`, the rule `decide`
    /// applies to `vote.cast`, which for a recorded vote gives back the vote itself.
    /// Returns the reason the event should not be there, or nil when it is sound.
    /// Errors thrown by `lookupVote` propagate.
    public func check(_ record: RecordedEvent, lookupVote: (UInt64) throws -> VoteCast?) throws -> DomainError? {
        if case .voteCast(let vote) = record.event {
            // What `decide` would give for this vote is the vote itself, if the rule admits it.
            guard let i = ordinal(of: vote.election) else {
                return DomainError(.unknownElection, "there is no election '\(vote.election)'")
            }
            do {
                let voted = hasVoted(vote.voter, inElection: i, before: record.seq, lookupVote: lookupVote)
                try electionList[i].checkVote(vote, at: record.timestamp, alreadyVoted: voted)
                return nil
            } catch {
                return error
            }
        }
        let expected: Event
        do {
            expected = try decide(Command(reconstructing: record.event), at: record.timestamp, lookupVote: lookupVote)
        } catch let refusal as DomainError {
            return refusal
        }
        guard expected == record.event else {
            // Events can be large (signatures, justifications): enough of one to tell it by.
            let given = String(describing: expected)
            return DomainError(.corruptRecord, "event \(record.seq) (\(record.event.kind)) differs from what the rules give for it: \(given.prefix(300))\(given.count > 300 ? "…" : "")")
        }
        return nil
    }
}

// Replay's bulk path for votes (see `ResolvedVote`).
extension LedgerState {
    /// The position of an election in `elections`, or nil if it is not defined (yet).
    public func ordinal(ofElection id: ElectionID) -> Int? { ordinal(of: id) }

    /// The position of a nominee among the nominees of the election at `election`.
    public func ordinal(ofNominee id: NomineeID, inElection election: Int) -> Int? {
        electionList[election].ordinal(of: id)
    }

    /// Checks a run of resolved votes of the election at position `election`, in sequence order
    /// with no other event between them, each by the rule as it stood before it, and counts
    /// them, as `check` and then `apply` would: `refused` gets the position in `run` of each
    /// vote the rule refuses, and why. (Replay counts what the ledger holds either way.) The
    /// voter slots of the whole run are read first, so that their cache misses overlap: a
    /// replay of millions of votes misses the caches on nearly every one.
    /// A voter found in the table is asked about with `lookupVote`, which reads the event its
    /// tag names (see `VoterRegister`); nearly every voter is new and costs no read.
    ///
    /// With a `journal` (a follower's store, which must be taken back if its transaction fails:
    /// see `takeBack`), what the run changes is noted in it, as `apply(_:journal:)` notes it.
    public mutating func replay(_ run: [RecordedVote], inElection election: Int, journal: inout Journal?,
                                lookupVote: (UInt64) throws -> VoteCast?, refused: (Int, DomainError) -> Void) {
        guard let last = run.last else { return }
        let id = electionList[election].id
        if let j = journal, election < j.elections, j.saved[election] == nil {
            journal!.saved[election] = electionList[election].saved()
        }
        if journal == nil {
            electionList[election].replay(run, voters: voters, election: election, isTheirs: { seq, voter in
                Self.isVote(seq, of: voter, in: id, lookupVote: lookupVote)
            }, refused: refused, changed: nil)
        } else {
            journal!.voters.reserveCapacity(journal!.voters.count + run.count)
            // Not kept past the call: the optional parameter below is escaping only in its type.
            withoutActuallyEscaping({ (key: Key128, previous: UInt32?) in journal!.voters.append((key, previous)) }) { note in
                electionList[election].replay(run, voters: voters, election: election, isTheirs: { seq, voter in
                    Self.isVote(seq, of: voter, in: id, lookupVote: lookupVote)
                }, refused: refused, changed: note)
            }
        }
        lastSeq = last.seq
    }

    /// `replay` with no journal (an audit, whose state is its own).
    public mutating func replay(_ run: [RecordedVote], inElection election: Int, lookupVote: (UInt64) throws -> VoteCast?,
                                refused: (Int, DomainError) -> Void) {
        var none: Journal?
        replay(run, inElection: election, journal: &none, lookupVote: lookupVote, refused: refused)
    }

    /// Whether `voter` has voted in `election`; `lookupVote` reads the vote an entry names (see
    /// `VoterRegister`).
    public func hasVoted(_ voter: VoterKey, in election: ElectionID, lookupVote: (UInt64) throws -> VoteCast?) -> Bool {
        guard let i = ordinal(of: election) else { return false }
        return hasVoted(voter, inElection: i, before: lastSeq + 1, lookupVote: lookupVote)
    }

    /// Whether `voter` voted in the election at `election` before event `seq` (see `VoterRegister`).
    func hasVoted(_ voter: VoterKey, inElection election: Int, before seq: UInt64,
                  lookupVote: (UInt64) throws -> VoteCast?) -> Bool {
        let id = electionList[election].id, prefix = voter.prefix
        return voters.hasVoted(prefix, election: election, before: seq) { Self.isVote($0, of: prefix, in: id, lookupVote: lookupVote) }
    }

    /// Whether event `seq` is the vote of the voter whose key starts `voter` in election `id`.
    /// An event that cannot be read counts as theirs: the vote at hand is then refused (a
    /// finding, in an audit), never counted twice.
    static func isVote(_ seq: UInt64, of voter: Key128, in id: ElectionID, lookupVote: (UInt64) throws -> VoteCast?) -> Bool {
        do {
            guard let vote = try lookupVote(seq) else { return false }
            return vote.election == id && vote.voter.prefix == voter
        } catch {
            return true
        }
    }
}

// What a state that outlives the process keeps (docs/architecture.md, "What is kept between
// starts"): every election's image and the ledger's own fields; the voter table is kept apart,
// in a file of its own.
extension LedgerState {
    public struct Image: Sendable, Equatable {
        public var lastSeq: UInt64
        public var lastCheckpoint: CheckpointAt?
        public var elections: [ElectionState.Image]

        public struct CheckpointAt: Sendable, Equatable {
            public var seq: UInt64
            public var checkpoint: Checkpoint
            public init(seq: UInt64, checkpoint: Checkpoint) { self.seq = seq; self.checkpoint = checkpoint }
        }

        public init(lastSeq: UInt64, lastCheckpoint: CheckpointAt?, elections: [ElectionState.Image]) {
            self.lastSeq = lastSeq
            self.lastCheckpoint = lastCheckpoint
            self.elections = elections
        }
    }

    public var image: Image {
        Image(lastSeq: lastSeq, lastCheckpoint: lastCheckpoint.map { Image.CheckpointAt(seq: $0.seq, checkpoint: $0.checkpoint) },
              elections: electionList.map(\.image))
    }

    /// The state `image` describes, with `voters` as its voter table.
    public init(image: Image, voters: TaggedKeySet) throws(DomainError) {
        self.init(voters: voters)
        lastSeq = image.lastSeq
        lastCheckpoint = image.lastCheckpoint.map { ($0.seq, $0.checkpoint) }
        for election in image.elections {
            guard ordinal(of: election.definition.id) == nil else {
                throw DomainError(.corruptRecord, "the kept state names election '\(election.definition.id)' twice")
            }
            index.append(election.definition.id)
            electionList.append(try ElectionState(image: election))
        }
    }
}
