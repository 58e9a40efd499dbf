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
