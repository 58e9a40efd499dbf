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
    public var votingOpenedAt: Timestamp? { storage.votingOpenedAt }
    public var votingClosedAt: Timestamp? { storage.votingClosedAt }
    public var juryClosed: Bool { storage.juryClosed }
    /// Whether the result is certified, which seals the election.
    var isSealed: Bool { storage.sealed }
    public var certified: CertifiedResult? { storage.certified }
    /// Valid votes per nominee ordinal.
    public var votes: [Int] { storage.votes }
    public var invalidatedVotes: Int { storage.invalidatedVotes }
    /// Valid votes per series bucket start (microseconds) and nominee ordinal: a row for every
    /// bucket a vote was counted or invalidated in, as long as `nominees`. Built on each call
    /// (see `seriesRow` for one bucket, `seriesBuckets` for their starts).
    public var series: [Int64: [Int]] { storage.series }

    /// The starts of the buckets `series` has rows for, in no particular order.
    public var seriesBuckets: [Int64] { storage.seriesBuckets }

    /// How many buckets the series' rows by number cover, and the room for counts in each (tests).
    var seriesDenseBuckets: Int { storage.hasRow.count }
    var seriesRowStride: Int { storage.rowStride }

    /// The row of `series` for the bucket starting at `bucket`, nil when it has none.
    public func seriesRow(_ bucket: Int64) -> [Int]? { storage.seriesRow(bucket) }
    /// The current score per (juror, nominee, criterion) and the event that set it.
    public var scores: [ScoreSlot: (score: Int32, seq: UInt64)] { storage.scores }
    /// The last event that changed this election.
    public var lastSeq: UInt64 { storage.lastSeq }

    public var validVotes: Int { storage.votes.reduce(0, +) }
    /// Every vote accepted, valid or since invalidated: the turnout, which is always public.
    public var votesCast: Int { storage.votesCast }

    public func ordinal(of nominee: NomineeID) -> Int? { storage.ordinal(of: nominee) }
    public func hasJuror(_ id: JurorID) -> Bool { storage.jurorIDs.contains(id) }
    public func isInvalidated(vote seq: UInt64) -> Bool { storage.invalidated.contains(seq) }

    /// The window `cast_at` is judged against, half-open (see `ElectionDefinition`): the
    /// schedule, moved by an explicit open (only before any vote) or close. Closing at T admits
    /// votes cast at T itself, so a vote accepted before the close stays inside.
    public var effectiveOpensAt: Timestamp { storage.window.opens }
    public var effectiveClosesAt: Timestamp { storage.window.closes }

    public func isInWindow(_ t: Timestamp) -> Bool { t >= storage.window.opens && t < storage.window.closes }

    public func isVotingOver(at now: Timestamp) -> Bool { storage.definition.isVotingOver(at: now, closedAt: storage.votingClosedAt) }

    /// A small summary, detached from this state's storage (see `ElectionStatus`).
    public var status: ElectionStatus {
        ElectionStatus(definition: storage.definition, nominees: storage.nominees, jurors: storage.jurors.map(\.id),
                       votingOpenedAt: storage.votingOpenedAt, votingClosedAt: storage.votingClosedAt,
                       juryClosed: storage.juryClosed, certified: storage.certified,
                       votesCast: storage.votesCast, lastSeq: storage.lastSeq)
    }

    /// `repeatedVoter`: a vote whose voter had voted (a replay of what the rules refuse) is
    /// counted for its nominee but not in the turnout.
    mutating func apply(_ record: RecordedEvent, repeatedVoter: Bool = false) {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        storage.apply(record)
        if repeatedVoter { storage.votesCast -= 1 }
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
    /// there; `isTheirs(tag, voter)` says whether it is an earlier vote of theirs).
    mutating func replay(_ run: [RecordedVote], voters: VoterRegister, election: Int,
                         isTheirs: (UInt64, Key128) -> Bool, refused: (Int, DomainError) -> Void) {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        let storage = storage
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
                try checkVote(vote, at: run[i].recordedAt, alreadyVoted: alreadyVoted)
            } catch {
                refused(i, error)
            }
            storage.count(nominee: vote.nominee, castAt: vote.castAt)
            if !alreadyVoted { storage.votesCast += 1 }
            return !alreadyVoted
        }
        storage.lastSeq = run[run.count - 1].seq
    }

    /// The fields, in one object so that copying the state is cheap; mutated only when unique.
    /// What every vote reads (the window, the bucket width, whether the result is certified) is
    /// also kept as plain numbers, so that checking and counting a vote copies no collection.
    ///
    /// The fields every vote reads or writes are `@exclusivity(unchecked)`: a class's fields
    /// are otherwise checked for overlapping access at run time, on every access, which was
    /// about 4 % of an audit's time. Nothing here can overlap: the storage is changed only by
    /// `ElectionState`'s mutating methods, on a state that holds it alone, and no access to
    /// one field runs code touching the same field.
    fileprivate final class Storage: @unchecked Sendable {
        let definition: ElectionDefinition
        let definedAt: UInt64
        /// The effective window, half-open (see `ElectionState.effectiveOpensAt`).
        @exclusivity(unchecked) var window: (opens: Timestamp, closes: Timestamp)
        let bucketOrigin: Timestamp
        let bucketWidth: Int64
        @exclusivity(unchecked) var sealed = false
        var nominees: [Nomination] = []
        var nomineeIndex = OrdinalIndex()
        var jurors: [(id: JurorID, name: String)] = []
        var jurorIDs: Set<JurorID> = []
        var votingOpenedAt: Timestamp?
        var votingClosedAt: Timestamp?
        var juryClosed = false
        var certified: CertifiedResult?
        @exclusivity(unchecked) var votes: [Int] = []
        var invalidatedVotes = 0
        /// The series. The buckets numbered 0..<hasRow.count from the origin, nearly every
        /// vote's, are rows of `dense` (bucket n's count for nominee i at n * rowStride + i),
        /// which a vote finds by its number with no hashing and no array of its own;
        /// `hasRow[n]` says whether bucket n has one. Every other bucket's row is in `sparse`.
        /// The dense range grows (doubling) to take a bucket past it only while the rows fill
        /// about half of it, and to at most 2^20 counts (8 MB), so that a few far buckets (a
        /// ledger can hold votes cast at any time, counted all the same) stay in the dictionary
        /// instead of making megabytes of empty rows.
        @exclusivity(unchecked) var dense: [Int] = []
        @exclusivity(unchecked) var hasRow: [Bool] = []
        /// How many of `hasRow` are set.
        @exclusivity(unchecked) var denseRowCount = 0
        @exclusivity(unchecked) var sparse: [Int64: [Int]] = [:]
        /// Room for counts in a dense row: at least `nominees.count`, doubled when a nomination
        /// needs more, so that nominations after votes lay the rows out again only a few times.
        @exclusivity(unchecked) var rowStride = 0
        /// How many buckets the dense rows may cover, with `rowStride` counts each.
        @exclusivity(unchecked) var denseBuckets: Int64 = 1 << 20
        var scores: [ScoreSlot: (score: Int32, seq: UInt64)] = [:]
        @exclusivity(unchecked) var lastSeq: UInt64
        /// Every vote accepted (the voters themselves are in `LedgerState.voters`).
        @exclusivity(unchecked) var votesCast = 0
        var invalidated: Set<UInt64> = []

        init(definition: ElectionDefinition, seq: UInt64) {
            self.definition = definition
            self.definedAt = seq
            self.lastSeq = seq
            window = (definition.effectiveOpensAt(openedAt: nil), definition.effectiveClosesAt(closedAt: nil))
            bucketOrigin = definition.opensAt
            bucketWidth = definition.seriesBucketSeconds * 1_000_000
        }

        /// A copy that shares every collection until one side changes it.
        func copy() -> Storage {
            let c = Storage(definition: definition, seq: definedAt)
            c.nominees = nominees
            c.nomineeIndex = nomineeIndex
            c.jurors = jurors
            c.jurorIDs = jurorIDs
            c.votingOpenedAt = votingOpenedAt
            c.votingClosedAt = votingClosedAt
            c.window = window
            c.sealed = sealed
            c.juryClosed = juryClosed
            c.certified = certified
            c.votes = votes
            c.invalidatedVotes = invalidatedVotes
            c.dense = dense
            c.rowStride = rowStride
            c.denseBuckets = denseBuckets
            c.hasRow = hasRow
            c.denseRowCount = denseRowCount
            c.sparse = sparse
            c.scores = scores
            c.lastSeq = lastSeq
            c.votesCast = votesCast
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
                votes.append(0)
                if nominees.count > rowStride { widenDense(to: max(2 * rowStride, 8)) }
            case .votingOpened:
                votingOpenedAt = record.timestamp
                window.opens = definition.effectiveOpensAt(openedAt: record.timestamp)
            case .votingClosed:
                votingClosedAt = record.timestamp
                window.closes = definition.effectiveClosesAt(closedAt: record.timestamp)
            case .voteCast(let v):
                guard let i = ordinal(of: v.nominee) else { return }
                votesCast += 1
                count(nominee: i, castAt: v.castAt)
            case .voteInvalidated(let x):
                guard let i = ordinal(of: x.nominee) else { return }
                invalidated.insert(x.vote)
                invalidatedVotes += 1
                votes[i] -= 1
                count(x.castAt, nominee: i, by: -1)
            case .jurorAdded(_, let j, let name):
                jurorIDs.insert(j)
                jurors.append((j, name))
            case .juryScored(let s):
                scores[ScoreSlot(juror: s.juror, nominee: s.nominee, criterion: s.criterion)] = (s.score, record.seq)
            case .juryClosed:
                juryClosed = true
            case .resultCertified(let r):
                certified = r
                sealed = true
            case .importRecorded, .checkpointSigned:
                break
            }
        }

        /// Counts a valid vote for nominee `i`, in the tally and in its series bucket.
        func count(nominee i: Int, castAt: Timestamp) {
            votes[i] += 1
            count(castAt, nominee: i, by: 1)
        }

        func count(_ castAt: Timestamp, nominee i: Int, by delta: Int) {
            let (number, bucket) = ElectionDefinition.bucket(of: castAt, origin: bucketOrigin, width: bucketWidth)
            if number >= Int64(hasRow.count) && number < denseBuckets && number < 2 * Int64(denseRowCount + sparse.count) + 64 {
                growDense(toHold: Int(number))
            }
            if number >= 0 && number < Int64(hasRow.count) {
                let n = Int(number)
                if !hasRow[n] {  // (a read, where a write checks the array is unshared)
                    hasRow[n] = true
                    denseRowCount += 1
                }
                dense[n * rowStride + i] += delta
            } else if let row = sparse.index(forKey: bucket) {
                pad(&sparse.values[row])
                sparse.values[row][i] += delta
            } else {
                var row = Array(repeating: 0, count: nominees.count)
                row[i] = delta
                sparse[bucket] = row
            }
        }

        /// Extends the dense rows to take bucket `n` (below `denseBuckets`), doubling, and moves
        /// there the rows of `sparse` that the new range covers.
        private func growDense(toHold n: Int) {
            let old = hasRow.count
            let rows = min(max(n + 1, 2 * old, 64), Int(denseBuckets))
            hasRow += Array(repeating: false, count: rows - old)
            dense += Array(repeating: 0, count: rows * rowStride - dense.count)
            let covered = sparse.keys.compactMap { bucket in number(ofBucket: bucket).map { (bucket, $0) } }.filter { $0.1 >= old && $0.1 < rows }
            for (bucket, m) in covered {
                let row = padded(sparse.removeValue(forKey: bucket)!)
                dense.replaceSubrange(m * rowStride..<m * rowStride + row.count, with: row)
                hasRow[m] = true
                denseRowCount += 1
            }
        }

        /// Lays the dense rows out again with room for `stride` counts each; a row past the
        /// buckets that leaves room for moves to `sparse`.
        private func widenDense(to stride: Int) {
            let old = rowStride, oldRows = hasRow, oldDense = dense
            rowStride = stride
            denseBuckets = Int64((1 << 20) / stride)
            let kept = min(oldRows.count, Int(denseBuckets))
            hasRow = Array(repeating: false, count: kept)
            dense = Array(repeating: 0, count: kept * stride)
            denseRowCount = 0
            for n in oldRows.indices where oldRows[n] {
                let row = oldDense[n * old..<(n + 1) * old]
                if n < kept {
                    hasRow[n] = true
                    denseRowCount += 1
                    dense.replaceSubrange(n * stride..<n * stride + old, with: row)
                } else {
                    sparse[start(ofBucket: n)] = Array(row)
                }
            }
        }

        private func start(ofBucket n: Int) -> Int64 { bucketOrigin.microseconds + Int64(n) * bucketWidth }

        /// The number of the bucket starting at `bucket`, if that is a bucket start at or after
        /// the origin.
        private func number(ofBucket bucket: Int64) -> Int? {
            let offset = bucket - bucketOrigin.microseconds
            guard offset >= 0 && offset % bucketWidth == 0 else { return nil }
            return Int(exactly: offset / bucketWidth)
        }

        /// A row as long as `nominees` (a row of `sparse` made before a late nomination is short).
        private func pad(_ row: inout [Int]) {
            if row.count < nominees.count { row += Array(repeating: 0, count: nominees.count - row.count) }
        }

        private func padded(_ row: [Int]) -> [Int] {
            var row = row
            pad(&row)
            return row
        }

        /// The dense row of bucket `n`, if it has one.
        private func denseRow(_ n: Int) -> [Int]? {
            guard n < hasRow.count, hasRow[n] else { return nil }
            return Array(dense[n * rowStride..<n * rowStride + nominees.count])
        }

        var seriesBuckets: [Int64] {
            Array(sparse.keys) + hasRow.indices.filter { hasRow[$0] }.map(start(ofBucket:))
        }

        var series: [Int64: [Int]] {
            var all = sparse.mapValues(padded)
            for n in hasRow.indices { if let row = denseRow(n) { all[start(ofBucket: n)] = row } }
            return all
        }

        func seriesRow(_ bucket: Int64) -> [Int]? {
            if let n = number(ofBucket: bucket), n < hasRow.count { return denseRow(n) }
            return sparse[bucket].map(padded)
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
            public init(id: JurorID, name: String) { self.id = id; self.name = name }
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
            public init(slot: ScoreSlot, score: Int32, seq: UInt64) { self.slot = slot; self.score = score; self.seq = seq }
        }

        public init(definition: ElectionDefinition, definedAt: UInt64, lastSeq: UInt64, nominees: [Nomination], jurors: [Juror],
                    votingOpenedAt: Timestamp?, votingClosedAt: Timestamp?, juryClosed: Bool, certified: CertifiedResult?,
                    votes: [Int], votesCast: Int, invalidatedVotes: Int, invalidated: [UInt64], series: [SeriesRow],
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
        let rows = s.seriesBuckets.sorted().map { Image.SeriesRow(bucket: $0, counts: s.seriesRow($0) ?? []) }
        let scores = s.scores.map { Image.Score(slot: $0.key, score: $0.value.score, seq: $0.value.seq) }
            .sorted { ($0.slot.juror, $0.slot.nominee, $0.slot.criterion) < ($1.slot.juror, $1.slot.nominee, $1.slot.criterion) }
        return Image(definition: s.definition, definedAt: s.definedAt, lastSeq: s.lastSeq, nominees: s.nominees,
                     jurors: s.jurors.map { Image.Juror(id: $0.id, name: $0.name) }, votingOpenedAt: s.votingOpenedAt,
                     votingClosedAt: s.votingClosedAt, juryClosed: s.juryClosed, certified: s.certified, votes: s.votes,
                     votesCast: s.votesCast, invalidatedVotes: s.invalidatedVotes, invalidated: s.invalidated.sorted(),
                     series: rows, scores: scores)
    }

    /// The state `image` describes. Throws when it does not hold together (counts for nominees
    /// it does not have): an image comes from a file, which may be damaged.
    public init(image: Image) throws(DomainError) {
        func broken(_ what: String) -> DomainError {
            DomainError(.corruptRecord, "the kept state of election '\(image.definition.id)' \(what)")
        }
        guard image.votes.count == image.nominees.count else { throw broken("has \(image.votes.count) counts for \(image.nominees.count) nominees") }
        let s = Storage(definition: image.definition, seq: image.definedAt)
        for nomination in image.nominees {
            s.apply(RecordedEvent(seq: image.definedAt, timestamp: Timestamp(microseconds: 0), actor: .system, idempotencyKey: "",
                                  event: .nomineeAdded(election: image.definition.id, nomination: nomination)))
        }
        for juror in image.jurors {
            s.jurorIDs.insert(juror.id)
            s.jurors.append((juror.id, juror.name))
        }
        s.votingOpenedAt = image.votingOpenedAt
        s.votingClosedAt = image.votingClosedAt
        s.window = (image.definition.effectiveOpensAt(openedAt: image.votingOpenedAt),
                    image.definition.effectiveClosesAt(closedAt: image.votingClosedAt))
        s.juryClosed = image.juryClosed
        s.certified = image.certified
        s.sealed = image.certified != nil
        s.votes = image.votes
        s.votesCast = image.votesCast
        s.invalidatedVotes = image.invalidatedVotes
        s.invalidated = Set(image.invalidated)
        for row in image.series {
            guard row.counts.count <= image.nominees.count, !row.counts.isEmpty else { throw broken("has a series row of \(row.counts.count) counts") }
            for (i, n) in row.counts.enumerated() { s.count(Timestamp(microseconds: row.bucket), nominee: i, by: n) }
        }
        for score in image.scores { s.scores[score.slot] = (score.score, score.seq) }
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
