public import BallotDomain
public import BallotCollections
public import BallotStore
public import BallotFormat
public import BallotAudit

/// The writer's index of every idempotency key in the ledger, by slot: 8 bytes per key (see
/// `SequenceIndex`), which keeps an import of a million votes well under its memory target.
/// The event a key points at is read back anyway, to compare contents; the same read tells a
/// true hit from another key that shares the slot's 32 bits.
struct IdempotencyIndex {
    let keyIndex: SequenceIndex
    /// The seed of the keys' hash (`KeyHash`), kept with the index.
    let seed: UInt64

    init(_ keyIndex: SequenceIndex = SequenceIndex(), seed: UInt64 = IdempotencySlot.seed) {
        self.keyIndex = keyIndex
        self.seed = seed
    }

    /// Where `submission`'s key lives in this index: the slot it came with when it was hashed
    /// with this seed (an index made by this process), else hashed again here, on the writer's
    /// thread (a few nanoseconds: an index kept from an earlier process has that one's seed).
    func slot(of submission: Submission) -> Key128? {
        guard let slot = submission.idempotencySlot else { return nil }
        return submission.slotSeed == seed ? slot
            : IdempotencyScope(submission.command).slot(submission.idempotencyKey, seed: seed)
    }

    func insert(_ slot: Key128, seq: UInt64) {
        keyIndex.insert(slot, seq: seq)
    }

    /// Takes back `insert(slot, seq:)`.
    func remove(_ slot: Key128, seq: UInt64) {
        keyIndex.remove(slot, seq: seq)
    }

    var count: Int { keyIndex.count }

    /// See `SequenceIndex.prefetch`.
    func prefetch(_ slots: [Key128]) {
        keyIndex.prefetch(slots)
    }

    /// The event that used `key` in `scope` (at `slot`), read with `record`; nil for a key not
    /// seen before there.
    func original(of key: String, in scope: IdempotencyScope, slot: Key128, lastSeq: UInt64,
                  record: (UInt64) throws -> RecordedEvent?) throws -> RecordedEvent? {
        var original: RecordedEvent?
        _ = try keyIndex.firstEvent(holding: slot, lastSeq: lastSeq) { seq in
            guard let candidate = try record(seq) else {
                throw LedgerError.corruptRecord(seq: seq, reason: "event \(seq) is missing (the idempotency index names it, for key '\(key)')")
            }
            guard candidate.idempotencyKey == key, IdempotencyScope(candidate.event) == scope else { return false }
            original = candidate
            return true
        }
        return original
    }
}
