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

    public init() {}

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
    public mutating func apply(_ record: RecordedEvent) {
        lastSeq = record.seq
        if case .electionDefined(let definition) = record.event {
            index.append(definition.id)
            electionList.append(ElectionState(definition: definition, seq: record.seq))
        } else if case .checkpointSigned(let checkpoint) = record.event {
            lastCheckpoint = (record.seq, checkpoint)
        } else if let election = record.event.election, let i = ordinal(of: election) {
            electionList[i].apply(record)
        }
    }

    /// What a batch of events changed, kept so that a failed transaction can take it back
    /// without a replay (`apply(_:journal:)`, `takeBack(_:)`): the ledger's own fields, each
    /// election's state as it was before the batch first changed it (without its voter table),
    /// and the voters the batch added. Elections defined by the batch are simply dropped.
    public struct Journal: Sendable {
        fileprivate let elections: Int
        fileprivate let index: OrdinalIndex
        fileprivate let lastSeq: UInt64
        fileprivate let lastCheckpoint: (seq: UInt64, checkpoint: Checkpoint)?
        fileprivate var saved: [ElectionState.Saved?]
        fileprivate var voters: [(election: Int, key: Key128)] = []
    }

    /// A journal of what the events applied from now on change.
    public func journal() -> Journal {
        Journal(elections: electionList.count, index: index, lastSeq: lastSeq, lastCheckpoint: lastCheckpoint,
                saved: Array(repeating: nil, count: electionList.count))
    }

    /// `apply`, noting in `journal` what it changes.
    public mutating func apply(_ record: RecordedEvent, journal: inout Journal) {
        if let election = record.event.election, let i = ordinal(of: election), i < journal.elections {
            if journal.saved[i] == nil { journal.saved[i] = electionList[i].saved() }
            if case .voteCast(let vote) = record.event { journal.voters.append((i, vote.voter.prefix)) }
        }
        apply(record)
    }

    /// Takes back every event applied since `journal` was made: the state is then what it was.
    public mutating func takeBack(_ journal: Journal) {
        electionList.removeLast(electionList.count - journal.elections)
        index = journal.index
        lastSeq = journal.lastSeq
        lastCheckpoint = journal.lastCheckpoint
        var added = Array(repeating: [Key128](), count: journal.elections)
        for (election, key) in journal.voters { added[election].append(key) }
        for (i, saved) in journal.saved.enumerated() {
            guard let saved else { continue }
            electionList[i].restore(saved, takingBack: added[i])
        }
    }

    /// Brings into cache the slots of an election's voter table that these voters (the first
    /// 128 bits of their keys) will look up, before their votes are checked and applied one at
    /// a time: in batches of thousands, the table misses then overlap (see
    /// `Key128Map.prefetch`). Changes nothing that can be seen.
    public mutating func prefetchVoters(_ voters: [Key128], in election: ElectionID) {
        guard let i = ordinal(of: election) else { return }
        electionList[i].prefetchVoters(voters)
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
                try electionList[i].checkVote(vote, at: record.timestamp)
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
            return DomainError(.corruptRecord, "event \(record.seq) (\(record.event.kind)) differs from what the rules give for it: \(expected)")
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
    public mutating func replay(_ run: [RecordedVote], inElection election: Int, refused: (Int, DomainError) -> Void) {
        guard let last = run.last else { return }
        electionList[election].replay(run, refused: refused)
        lastSeq = last.seq
    }

    /// Makes room in the voter table of the election at `election` for `count` voters in all,
    /// when a replay knows roughly how many to expect: the table then never grows on the way
    /// (each doubling moves every entry). Changes nothing that can be seen.
    public mutating func reserveVoters(_ count: Int, inElection election: Int) {
        electionList[election].reserveVoters(count)
    }
}
