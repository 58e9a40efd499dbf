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

/// The writer's index of every idempotency key in the ledger: slot → the low 32 bits of the
/// sequence number of the event the key produced. Half the memory of whole sequence numbers
/// (8 MB less per million keys, which keeps an import of a million votes under its memory
/// target). The event itself is read back on a hit anyway, to compare contents; so in a ledger
/// past 2^32 events the few candidates are told apart by the key each record holds.
struct IdempotencyIndex {
    private var slots = Key128Map<UInt32>()

    mutating func insert(_ slot: Key128, seq: UInt64) {
        slots.insert(slot, UInt32(truncatingIfNeeded: seq))
    }

    /// The event that used `key` (at `slot`), read with `record`; nil for a key not seen before.
    func original(of key: String, slot: Key128, lastSeq: UInt64,
                  record: (UInt64) throws -> RecordedEvent?) throws -> RecordedEvent? {
        guard let low = slots[slot] else { return nil }
        var seq = UInt64(low)
        while seq <= lastSeq {
            if seq > 0, let candidate = try record(seq), candidate.idempotencyKey == key { return candidate }
            seq += 1 << 32
        }
        throw LedgerError.corruptRecord(seq: UInt64(low), reason: "idempotency key '\(key)' points at no event that holds it")
    }
}
