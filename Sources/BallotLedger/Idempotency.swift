import BallotDomain

/// Where an idempotency key lives in the index: the first 128 bits of its SHA-256, fixed in size
/// however long the key. Keys are global to the ledger: one key names one command, whatever
/// election it is for, so a `vote_id` sent again with another election is a `conflict`.
enum IdempotencySlot {
    static func key(_ key: String) -> Key128 {
        var key = key
        return key.withUTF8 { SHA256Digester.hash(UnsafeRawBufferPointer($0)) }.prefix
    }
}

/// The writer's index of every idempotency key in the ledger, by slot: 8 bytes per key (see
/// `SequenceIndex`), which keeps an import of a million votes well under its memory target.
/// The event a key points at is read back anyway, to compare contents; the same read tells a
/// true hit from another key that shares the slot's 32 bits.
struct IdempotencyIndex {
    private var keyIndex = SequenceIndex()

    mutating func insert(_ slot: Key128, seq: UInt64) {
        keyIndex.insert(slot, seq: seq)
    }

    /// See `SequenceIndex.prefetch`.
    mutating func prefetch(_ slots: [Key128]) {
        keyIndex.prefetch(slots)
    }

    /// The event that used `key` (at `slot`), read with `record`; nil for a key not seen before.
    func original(of key: String, slot: Key128, lastSeq: UInt64,
                  record: (UInt64) throws -> RecordedEvent?) throws -> RecordedEvent? {
        var original: RecordedEvent?
        _ = try keyIndex.firstEvent(holding: slot, lastSeq: lastSeq) { seq in
            guard let candidate = try record(seq) else {
                throw LedgerError.corruptRecord(seq: seq, reason: "event \(seq) is missing (the idempotency index names it, for key '\(key)')")
            }
            guard candidate.idempotencyKey == key else { return false }
            original = candidate
            return true
        }
        return original
    }
}
