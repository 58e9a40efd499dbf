public import BallotStore
public import BallotDomain
public import BallotCollections
public import BallotFormat
public import BallotAudit

/// What the ledger's writer knows beyond its records, all of it derived from the stored events:
/// the elections, the voters who have voted, the idempotency keys, the Merkle frontier and the
/// last timestamp. The two tables may be kept in files (`KeptState`); the rest is small. One
/// value, so that a batch is one exclusive access to it rather than several per event.
struct WriterState {
    var state: LedgerState
    var frontier: MerkleFrontier
    var idempotency: IdempotencyIndex
    var lastTimestamp: Timestamp
    /// The ledger's id, which jurors' statements name (docs/ledger-format.md §3.2).
    var ledgerID: [UInt8]
    /// The tally and ranking documents the last batch wrote, by election: what the daemon
    /// publishes once the batch commits, without reading them back.
    var standingsWritten: [ElectionID: (tally: [UInt8], ranking: [UInt8])] = [:]
    /// What each batch in hand changed, oldest first, until its transaction commits
    /// (`endBatch`) or fails (`takeBackBatch`). One, but for a follower's store, which verifies
    /// a slice of records while the one before it commits (`Ledger.replicate`).
    var batches: [BatchJournal] = []

    /// What a batch changed in memory: enough to put everything back as it was, exactly and
    /// without reading the ledger, when its transaction fails (map growth, `ledger_full`, a
    /// full disk, an I/O error), so that a failed write costs that batch alone (and, for a
    /// follower, the slice verified behind it: `Ledger.replicate`).
    struct BatchJournal {
        var state: LedgerState.Journal
        let frontier: MerkleFrontier
        let lastTimestamp: Timestamp
        var keys: [(slot: Key128, seq: UInt64)] = []
    }

    /// The state the audit ended in, from wherever it began (`AuditStart`): its elections and
    /// voters, its Merkle frontier, its idempotency keys.
    init(_ report: AuditReport, keySeed: UInt64, ledgerID: [UInt8]) {
        self.ledgerID = ledgerID
        state = report.state
        frontier = report.frontier
        idempotency = IdempotencyIndex(report.idempotency, seed: keySeed)
        lastTimestamp = report.lastTimestamp
    }

    /// The first finding of `report` as the error an open throws, naming the event.
    static func refusal(_ report: AuditReport) -> LedgerError? {
        guard let bad = report.firstBad else { return nil }
        let more = report.findings.count > 1 ? " (and \(report.findings.count - 1) more findings; run ballot-replay verify)" : ""
        return LedgerError.corruptRecord(seq: bad.events.lowerBound, reason: (bad.events.count == 1 ? bad.what : bad.description) + more)
    }

    /// Makes room in the voter table and the key index for a batch of `count` submissions
    /// before it begins: growing a table kept in a file is the one step that can fail (its
    /// disk is full), and it must not fail half way through a batch. Returns whether a table grew
    /// or its layers changed (a snapshot is due). `ahead` more submissions are expected soon
    /// (an import's remaining rows): the tables grow for them now, once, where they can.
    func reserve(_ count: Int, ahead: Int = 0) throws -> Bool {
        func layout() -> [Int] {
            [state.voters.keys.slotCount, state.voters.keys.layerChanges, idempotency.keyIndex.slotCount, idempotency.keyIndex.layerChanges]
        }
        let before = layout()
        if ahead > 0 {
            // Only a hint, taken when a table must grow anyway: a disk that cannot give room for
            // the estimate still gives the batch its own, just below.
            try? state.voters.keys.reserveAhead(count + ahead, whenShortOf: count)
            try? idempotency.keyIndex.reserveAhead(count + ahead + 2, whenShortOf: count + 2)
        }
        do {
            try state.reserveVoters(count)
            try idempotency.keyIndex.reserve(count + 2)
        } catch {
            throw LedgerError.tables(error)
        }
        return before != layout()
    }

    // MARK: Appending

    /// Decides and appends each submission in order; writes the projections the batch changed.
    /// With a checkpoint key, a checkpoint follows every close of a vote and every certification
    /// in the same transaction, so the numbers at those moments are on the record before anyone
    /// asks.
    mutating func append(_ batch: [Submission], at now: Timestamp, signer: CheckpointSigner?, in txn: borrowing WriteTransaction,
                         _ dbs: LedgerDatabases) throws -> [Outcome] {
        beginBatch(events: batch.count)
        var outcomes: [Outcome] = []
        outcomes.reserveCapacity(batch.count)
        var changed = ProjectionChanges()
        var writer = ByteWriter(capacity: 256)
        for (i, submission) in batch.enumerated() {
            if i % Self.prefetchRun == 0 { prefetch(batch[i..<min(i + Self.prefetchRun, batch.count)]) }
            let outcome = try append(submission, at: now, signer: signer, in: txn, dbs, changed: &changed, writer: &writer)
            outcomes.append(outcome)
            guard signer != nil, case .appended = outcome else { continue }
            let reason: Checkpoint.Reason
            switch submission.command {
            case .closeVoting: reason = .votingClosed
            // Certified by result.certify, or by the co-signature that met the jury's quorum
            // (not by one that only put the result to the jury, or added a signature short of it).
            case .certifyResult(let e, _), .signResult(let e, _, _):
                guard state[e]?.certified != nil else { continue }
                reason = .resultCertified
            default: continue
            }
            _ = try append(Submission(.takeCheckpoint(reason), by: .system), at: now, signer: signer, in: txn, dbs,
                           changed: &changed, writer: &writer)
        }
        try writeProjections(changed, in: txn, dbs)
        return outcomes
    }

    /// How many submissions' table slots are brought into cache at a time: enough for their
    /// misses to overlap, few enough that the slots are still in cache when they are used.
    static let prefetchRun = 512

    /// Brings into cache the idempotency and voter slots these submissions will look up (see
    /// `TaggedKeySet.prefetch`): an import's batch otherwise takes two cache misses per vote.
    /// Only a hint: votes for an election other than the first vote's are not prefetched.
    private func prefetch(_ run: ArraySlice<Submission>) {
        guard run.count > 1 else { return }
        var slots: [Key128] = []
        var voters: [Key128] = []
        var election: ElectionID?
        slots.reserveCapacity(run.count)
        voters.reserveCapacity(run.count)
        for submission in run {
            if let slot = idempotency.slot(of: submission) { slots.append(slot) }
            guard case .castVote(let e, _, let voter, _, _) = submission.command else { continue }
            if election == nil { election = e }
            if e == election { voters.append(voter.prefix) }
        }
        idempotency.prefetch(slots)
        if let election { state.prefetchVoters(voters, in: election) }
    }

    private mutating func append(_ submission: Submission, at now: Timestamp, signer: CheckpointSigner?,
                                 in txn: borrowing WriteTransaction, _ dbs: LedgerDatabases,
                                 changed: inout ProjectionChanges, writer: inout ByteWriter) throws -> Outcome {
        // A checkpoint is made here, where the tree and the key are; any other command is
        // decided as it came (not copied: a vote's command is read in place).
        var checkpoint: Command?
        if case .takeCheckpoint(let reason) = submission.command {
            guard let signer else {
                return .refused(DomainError(.badRequest, "this ledger was opened without a checkpoint key; set checkpoint_key_file"))
            }
            // Nothing happened since the last checkpoint: it still holds.
            if let last = state.lastCheckpoint, last.seq == state.lastSeq {
                return .repeated(Receipt(seq: last.seq, leafHash: try LedgerReader.node(0, last.seq - 1, in: txn, dbs)))
            }
            checkpoint = .recordCheckpoint(Checkpoint.make(reason, state: state, root: frontier.root, at: now, signer: signer))
        }
        if let checkpoint {
            return try appendDecided(checkpoint, submission, at: now, in: txn, dbs, changed: &changed, writer: &writer)
        }
        return try appendDecided(submission.command, submission, at: now, in: txn, dbs, changed: &changed, writer: &writer)
    }

    /// `append` of `command`: the submission's own, or the checkpoint made for it.
    private mutating func appendDecided(_ command: Command, _ submission: Submission, at now: Timestamp,
                                        in txn: borrowing WriteTransaction, _ dbs: LedgerDatabases,
                                        changed: inout ProjectionChanges, writer: inout ByteWriter) throws -> Outcome {
        let key = submission.idempotencyKey
        let slot = idempotency.slot(of: submission)
        if let slot {
            guard key.utf8.count <= RecordCodec.maxIdempotencyKeyBytes else {
                return .refused(DomainError(.badRequest, "idempotency key is \(key.utf8.count) bytes; at most \(RecordCodec.maxIdempotencyKeyBytes)"))
            }
            if let original = try idempotency.original(of: key, in: IdempotencyScope(command), slot: slot, lastSeq: state.lastSeq, record: {
                try LedgerReader.record($0, in: txn, dbs)
            }) {
                return try repeated(submission, original: original, in: txn, dbs)
            }
        }
        let event: Event
        do {
            event = try state.decide(command, at: now) { seq in
                guard case .voteCast(let vote)? = try LedgerReader.record(seq, in: txn, dbs)?.event else { return nil }
                return vote
            }
        } catch let refusal as DomainError {
            return .refused(refusal)
        }
        if let refusal = JurySignatures.refusal(event, after: state, ledger: ledgerID) { return .refused(refusal) }
        let seq = state.lastSeq + 1
        guard seq <= Limits.events else {
            return .refused(DomainError(.ledgerFull, "the ledger holds \(Limits.events) events, the most one ledger can hold"))
        }
        let record = RecordedEvent(seq: seq, timestamp: now, actor: submission.actor, idempotencyKey: key, event: event)
        writer.bytes.removeAll(keepingCapacity: true)
        RecordCodec.encode(record, into: &writer)
        let leaf = try writer.bytes.withUnsafeBytes { try store(record, bytes: $0, slot: slot, in: txn, dbs, changed: &changed) }
        return .appended(Receipt(seq: seq, leafHash: leaf))
    }

    /// The part of an append after its decision, shared by a decided command and a replicated
    /// record: stores the event's bytes at its sequence number, hashes its leaf into the
    /// frontier (storing the nodes it completes), applies it to the state and notes its
    /// idempotency key. Returns the leaf hash.
    mutating func store(_ record: RecordedEvent, bytes: UnsafeRawBufferPointer, slot: Key128?, in txn: borrowing WriteTransaction,
                        _ dbs: LedgerDatabases, changed: inout ProjectionChanges) throws -> MerkleHash {
        let seq = record.seq
        let leaf = MerkleHash.leaf(bytes)
        try withUnsafeBytes(of: seq.bigEndian) { k in
            try txn.put(k, bytes, in: dbs.events, flags: .append, "appending event \(seq) (\(record.event.kind)) to 'events'")
        }
        try frontier.append(leaf) { level, index, hash in
            guard level >= LedgerKeys.firstStoredLevel else { return }
            try LedgerKeys.withMerkleNodeKey(level: level, index: index) { k in
                try hash.withBytes { v in
                    try txn.put(k, v, in: dbs.merkle, flags: .append, "storing Merkle node (level \(level), index \(index)) for event \(seq)")
                }
            }
        }
        let newest = batches.count - 1
        state.apply(record, journal: &batches[newest].state)
        if let slot {
            idempotency.insert(slot, seq: seq)
            batches[newest].keys.append((slot, seq))
        }
        changed.note(record.event, state)
        return leaf
    }

    /// Starts the journal of a batch of `events` events (see `takeBackBatch`). A batch begun
    /// while another is in hand (`continuing`) is taken back with it.
    mutating func beginBatch(events: Int, continuing: Bool = false) {
        precondition(continuing || batches.isEmpty, "a batch was begun while another was in hand")
        if batches.isEmpty { standingsWritten.removeAll(keepingCapacity: true) }
        var journal = BatchJournal(state: state.journal(events: events), frontier: frontier, lastTimestamp: lastTimestamp)
        journal.keys.reserveCapacity(events)
        batches.append(journal)
    }

    /// A key seen before: the original receipt if the content matches, else a conflict.
    private func repeated(_ submission: Submission, original: RecordedEvent, in txn: borrowing WriteTransaction,
                          _ dbs: LedgerDatabases) throws -> Outcome {
        let seq = original.seq
        guard submission.command.matches(original.event) else {
            return .refused(DomainError(.conflict, "idempotency key '\(submission.idempotencyKey)' was already used for event \(seq) (\(original.event.kind) in '\(original.event.election?.value ?? "")') with different content"))
        }
        let leaf = try LedgerReader.node(0, seq - 1, in: txn, dbs)
        return .repeated(Receipt(seq: seq, leafHash: leaf))
    }

    /// The oldest batch in hand is durable: forget how to take it back.
    mutating func endBatch() { batches.removeFirst() }

    /// The transaction of the oldest batch in hand failed, or a follower's slice did not verify:
    /// puts memory back as it was before the oldest (every batch in hand, newest first), which
    /// is what the ledger holds.
    mutating func takeBackBatch() {
        guard !batches.isEmpty else { return }
        for journal in batches.reversed() {
            state.takeBack(journal.state)
            frontier = journal.frontier
            lastTimestamp = journal.lastTimestamp
            for (slot, seq) in journal.keys.reversed() { idempotency.remove(slot, seq: seq) }
        }
        batches.removeAll()
        standingsWritten = [:]
    }

    // MARK: Projections

    /// Writes the tally, jury table and ranking of each changed election, and each changed
    /// votes-over-time bucket, and keeps the tallies and rankings to publish.
    mutating func writeProjections(_ changed: ProjectionChanges, in txn: borrowing WriteTransaction, _ dbs: LedgerDatabases) throws {
        standingsWritten.merge(try Self.writeProjections(of: state, changed, in: txn, dbs)) { $1 }
    }

    /// Writes the projections `changed` names, of `state`, and returns each election's tally
    /// and ranking documents. (Every document carries the election's `last_seq`, so a vote
    /// changes the jury table's bytes too.)
    static func writeProjections(of state: LedgerState, _ changed: ProjectionChanges, in txn: borrowing WriteTransaction,
                                 _ dbs: LedgerDatabases) throws -> [ElectionID: (tally: [UInt8], ranking: [UInt8])] {
        let (documents, standings) = projectionDocuments(of: state, changed, dbs)
        try put(documents, in: txn)
        return standings
    }

    /// A projection document and where it is stored.
    struct ProjectionDocument: Sendable {
        let db: Database
        let key: [UInt8]
        let bytes: [UInt8]
    }

    /// The documents of the projections `changed` names, of `state`, and each election's tally
    /// and ranking documents among them.
    static func projectionDocuments(of state: LedgerState, _ changed: ProjectionChanges, _ dbs: LedgerDatabases)
        -> (documents: [ProjectionDocument], standings: [ElectionID: (tally: [UInt8], ranking: [UInt8])]) {
        var documents: [ProjectionDocument] = []
        var standings: [ElectionID: (tally: [UInt8], ranking: [UInt8])] = [:]
        for id in changed.elections {
            guard let election = state[id] else { continue }
            let tally = Tally(election).json.serialized(), ranking = Ranking(election).json.serialized()
            documents.append(ProjectionDocument(db: dbs.projections, key: LedgerKeys.projection(id, .tally), bytes: tally))
            documents.append(ProjectionDocument(db: dbs.projections, key: LedgerKeys.projection(id, .jury), bytes: JuryTable(election).json.serialized()))
            documents.append(ProjectionDocument(db: dbs.projections, key: LedgerKeys.projection(id, .ranking), bytes: ranking))
            standings[id] = (tally, ranking)
        }
        for bucket in changed.buckets {
            guard let election = state[bucket.election] else { continue }
            documents.append(ProjectionDocument(db: dbs.series, key: LedgerKeys.seriesBucket(bucket.election, bucket.start),
                                                bytes: VotesOverTimeBucket(election, bucket: bucket.start).json.serialized()))
        }
        return (documents, standings)
    }

    static func put(_ documents: [ProjectionDocument], in txn: borrowing WriteTransaction) throws {
        for document in documents { try put(document.bytes, document.key, document.db, txn) }
    }

    private static func put(_ doc: [UInt8], _ key: [UInt8], _ db: Database, _ txn: borrowing WriteTransaction) throws {
        try txn.put(key, doc, in: db, "writing projection \(String(decoding: key.map { $0 == 0 ? 0x2F : $0 }, as: UTF8.self)) to \(db)")
    }
}
