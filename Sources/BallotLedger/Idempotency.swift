import BallotDomain

/// Where an idempotency key lives in the index: the audit's fast seeded hash of it
/// (`Audit.KeyCheck.hash`), so that the index a verifying open ends with is the writer's. The
/// seed is drawn afresh in each process, so that nobody can choose keys that crowd one slot.
enum IdempotencySlot {
    static let seed = UInt64.random(in: 1...UInt64.max)

    static func key(_ key: String) -> Key128 {
        var key = key
        return Key128(a: key.withUTF8 { Audit.KeyCheck.hash(UnsafeRawBufferPointer($0), seed: seed) }, b: 0)
    }
}

/// Which commands share a space of idempotency keys (docs/ledger-format.md, §2). Votes, live
/// and imported, share one: an import's `vote_id` sent again, or with another election, is the
/// same vote, or a `conflict`. Every other kind of command has a space of its own, so that a key
/// sent with one kind never meets a key of another: a juror who sends `jury.score` with an
/// import row's `vote_id` as its key makes a score's key, and the row still lands.
enum IdempotencyScope: Hashable, Sendable {
    case votes
    /// The op name of the command (`jury.score`, `vote.invalidate`, ...).
    case command(String)

    init(_ command: Command) {
        if case .castVote = command { self = .votes } else { self = .command(command.name) }
    }

    /// The scope of the command that produced `event`.
    init(_ event: Event) {
        if case .voteCast = event { self = .votes } else { self.init(Command(reconstructing: event)) }
    }

    /// The key's slot in the index: a vote's key alone (votes are nearly every keyed event),
    /// any other's after its op name and a NUL, so that the spaces spread apart.
    func slot(_ key: String) -> Key128 {
        switch self {
        case .votes: IdempotencySlot.key(key)
        case .command(let op): IdempotencySlot.key(op + "\u{0}" + key)
        }
    }
}

/// The writer's index of every idempotency key in the ledger, by slot: 8 bytes per key (see
/// `SequenceIndex`), which keeps an import of a million votes well under its memory target.
/// The event a key points at is read back anyway, to compare contents; the same read tells a
/// true hit from another key that shares the slot's 32 bits.
struct IdempotencyIndex {
    private var keyIndex: SequenceIndex

    init(_ keyIndex: SequenceIndex = SequenceIndex()) { self.keyIndex = keyIndex }

    mutating func insert(_ slot: Key128, seq: UInt64) {
        keyIndex.insert(slot, seq: seq)
    }

    /// Takes back `insert(slot, seq:)`.
    mutating func remove(_ slot: Key128, seq: UInt64) {
        keyIndex.remove(slot, seq: seq)
    }

    var count: Int { keyIndex.count }

    /// See `SequenceIndex.prefetch`.
    mutating func prefetch(_ slots: [Key128]) {
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
