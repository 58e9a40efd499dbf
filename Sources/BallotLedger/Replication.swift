public import BallotStore
public import BallotDomain
public import BallotFormat
import BallotCollections
import BallotAudit

// A follower's writer: the records its primary sent, verified by the audit's own engine against
// the state before them, then stored as sent.

extension WriterState {
    /// What a follower's store writes for a slice of records it verified: the records
    /// themselves (`records`, positions in the chunk), the Merkle nodes their leaves complete,
    /// and the projection documents as they stand after them.
    struct VerifiedSlice: Sendable {
        let records: Range<Int>
        let nodes: [(level: Int, index: UInt64, hash: MerkleHash)]
        let documents: [ProjectionDocument]
        /// The elections the slice changed.
        let changed: [ElectionID]
    }

    /// Verifies the records of `chunk` at `slice` with the audit's engine (`Audit.checkChunk`:
    /// decoded and their leaves hashed in bulk, votes checked and counted a run at a time)
    /// against the state the records before them left, and applies them to it, in a batch of
    /// its own (`beginBatch`): kept when the store commits (`endBatch`), else taken back. A
    /// record that does not verify throws `LedgerError.unverifiedRecord` naming the first such,
    /// and nothing of the slice is kept. Memory only: earlier events are read with `earlier`
    /// (those of the chunk, from the chunk).
    mutating func verify(_ chunk: RecordChunk, _ slice: Range<Int>, pinnedKey: Digest32?, _ dbs: LedgerDatabases,
                         earlier: RecordLookup) throws -> VerifiedSlice {
        beginBatch(events: slice.count, continuing: true)
        let first = chunk.first + UInt64(slice.lowerBound)
        if first + UInt64(slice.count) - 1 > Limits.events {
            throw LedgerError.unverifiedRecord(seq: max(first, Limits.events + 1), reason: "a ledger holds at most \(Limits.events) events")
        }
        let newest = batches.count - 1
        let check = try chunk.withRecords(slice) { records in
            try Audit.checkChunk(records, state: &state, frontier: &frontier, lastTimestamp: lastTimestamp,
                                 keyIndex: idempotency.keyIndex, keySeed: idempotency.seed, ledgerID: ledgerID, pinnedKey: pinnedKey,
                                 journal: &batches[newest].state) { seq in
                guard seq >= chunk.first else { return try earlier(seq) }
                return try chunk.withRecord(Int(seq - chunk.first)) { try RecordCodec.decode($0, seq: seq) }
            }
        }
        batches[newest].keys += check.keysAdded.lazy.map { ($0.key, $0.seq) }
        if let unreadable = check.unreadable { throw unreadable }
        if let (seq, reason) = check.refusal { throw LedgerError.unverifiedRecord(seq: seq, reason: reason) }
        lastTimestamp = check.lastTimestamp
        var changed = ProjectionChanges()
        let elections = state.elections
        for (i, buckets) in check.changed {
            changed.note(elections[i].id)
            for start in buckets { changed.note(elections[i].id, bucket: start) }
        }
        let (documents, standings) = Self.projectionDocuments(of: state, changed, dbs)
        standingsWritten.merge(standings) { $1 }
        return VerifiedSlice(records: slice, nodes: check.completedNodes, documents: documents, changed: changed.elections)
    }

    /// Writes a slice `verify` passed, its records exactly as sent. Touches no state: a
    /// thread of its own may run it while the writer verifies the next slice.
    static func store(_ slice: VerifiedSlice, of chunk: RecordChunk, in txn: borrowing WriteTransaction, _ dbs: LedgerDatabases) throws {
        try chunk.withRecords(slice.records) { records in
            for (seq, bytes) in records {
                try withUnsafeBytes(of: seq.bigEndian) { k in
                    try txn.put(k, bytes, in: dbs.events, flags: .append, "appending event \(seq) to 'events'")
                }
            }
        }
        for (level, index, hash) in slice.nodes {
            try LedgerKeys.withMerkleNodeKey(level: level, index: index) { k in
                try hash.withBytes { v in
                    try txn.put(k, v, in: dbs.merkle, flags: .append, "storing Merkle node (level \(level), index \(index))")
                }
            }
        }
        try put(slice.documents, in: txn)
    }

    /// The record-at-a-time path `replicate` is property-tested against (ReplicationTests):
    /// each record decoded in full, checked by `Audit.ruleRefusal` and `Audit.checkpoint` and
    /// stored as the writer stores its own events.
    mutating func replicateRecordByRecord(_ chunk: RecordChunk, pinnedKey: Digest32?, in txn: borrowing WriteTransaction,
                                          _ dbs: LedgerDatabases) throws -> (changed: [ElectionID], lastTimestamp: Timestamp) {
        beginBatch(events: chunk.count)
        var changed = ProjectionChanges()
        var time = lastTimestamp
        for i in 0..<chunk.count {
            let seq = chunk.first + UInt64(i)
            try chunk.withRecord(i) { bytes in
                func refuse(_ why: String) -> LedgerError { .unverifiedRecord(seq: seq, reason: why) }
                guard seq == state.lastSeq + 1 else { throw refuse("the follower holds \(state.lastSeq) events: the next must be event \(state.lastSeq + 1)") }
                guard seq <= Limits.events else { throw refuse("a ledger holds at most \(Limits.events) events") }
                let record: RecordedEvent
                do {
                    record = try RecordCodec.decode(bytes, seq: seq)
                } catch {
                    throw refuse("it does not decode: \(error)")
                }
                guard state.lastSeq == 0 || record.timestamp >= time else {
                    throw refuse("its timestamp \(record.timestamp) is earlier than the event before it (\(time))")
                }
                let refusal = try Audit.ruleRefusal(record, after: state, ledgerID: ledgerID) { vote in
                    guard case .voteCast(let v)? = try LedgerReader.record(vote, in: txn, dbs)?.event else { return nil }
                    return v
                }
                if let refusal { throw refuse("the rules refuse this \(record.event.kind) event: \(refusal.message)") }
                if case .checkpointSigned(let checkpoint) = record.event {
                    let check = Audit.checkpoint(checkpoint, at: seq, rootBefore: frontier.root, state: state, ledgerID: ledgerID,
                                                 pinnedKey: pinnedKey, earlierKey: state.lastCheckpoint?.checkpoint.publicKey)
                    if let finding = check.findings.first { throw refuse(finding.what) }
                }
                var slot: Key128?
                let key = record.idempotencyKey
                if !key.isEmpty {
                    let scope = IdempotencyScope(record.event)
                    let candidate = scope.slot(key, seed: idempotency.seed)
                    if let original = try idempotency.original(of: key, in: scope, slot: candidate, lastSeq: state.lastSeq,
                                                               record: { try LedgerReader.record($0, in: txn, dbs) }) {
                        throw refuse("its idempotency key '\(key)' was used before, by event \(original.seq)")
                    }
                    slot = candidate
                }
                _ = try store(record, bytes: bytes, slot: slot, in: txn, dbs, changed: &changed)
                time = record.timestamp
            }
        }
        try writeProjections(changed, in: txn, dbs)
        return (changed.elections, time)
    }
}

extension Ledger {
    /// What a follower learns of its primary with each chunk: which ledger it is, and the key
    /// its checkpoints must be signed by, if one was given.
    public struct Primary: Sendable {
        public var ledgerID: [UInt8]
        /// The primary's checkpoint key, when the operator pinned it (`follow_checkpoint_key`);
        /// otherwise the first checkpoint's key stands for it, as in `ballot-replay verify`.
        public var pinnedKey: Digest32?
        /// The events the primary last said it holds (0 when not known): a follower catching up
        /// grows its tables for all of them at once, not chunk after chunk.
        public var size: UInt64

        public init(ledgerID: [UInt8], pinnedKey: Digest32? = nil, size: UInt64 = 0) {
            self.ledgerID = ledgerID
            self.pinnedKey = pinnedKey
            self.size = size
        }
    }
}
