public import BallotCollections
public import BallotDomain

/// The seeded 64-bit hash of idempotency keys: a few nanoseconds, where SHA-256 takes a
/// hundred. Only for spreading keys over an index: a repeat is confirmed by comparing the keys
/// themselves. The writer's index and the audit's use the same hash and seed, so that the index a
/// verifying open ends with is the writer's.
package enum KeyHash {
    /// The hash of a short byte string (multiply-and-fold mixing over 8-byte words).
    /// `window` says what may be read around `bytes`, for reading their tail in one load; the
    /// hash does not depend on it.
    package static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64, in window: Window = .none) -> UInt64 {
        var h = seed ^ (UInt64(bytes.count) &* 0x9E37_79B9_7F4A_7C15)
        var i = 0
        while i + 8 <= bytes.count {
            h = fold(h ^ bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self), 0xA076_1D64_78BD_642F)
            i += 8
        }
        h = fold(h ^ window.word(bytes, i), 0xE703_7ED1_A0B4_28DB)
        return fold(h, 0x8EBC_6AF0_9C88_C6E3)
    }

    /// The same hash of a text of at most 32 bytes, already read into words.
    @inlinable @inline(__always)
    package static func hash(_ text: TextCodes.Bytes, seed: UInt64) -> UInt64 {
        let (w0, w1, w2, w3) = text.words
        let whole = text.length / 8
        var h = seed ^ (UInt64(text.length) &* 0x9E37_79B9_7F4A_7C15)
        if whole > 0 { h = fold(h ^ w0, 0xA076_1D64_78BD_642F) }
        if whole > 1 { h = fold(h ^ w1, 0xA076_1D64_78BD_642F) }
        if whole > 2 { h = fold(h ^ w2, 0xA076_1D64_78BD_642F) }
        if whole > 3 { h = fold(h ^ w3, 0xA076_1D64_78BD_642F) }
        let tail = whole == 0 ? w0 : whole == 1 ? w1 : whole == 2 ? w2 : whole == 3 ? w3 : 0
        h = fold(h ^ tail, 0xE703_7ED1_A0B4_28DB)
        return fold(h, 0x8EBC_6AF0_9C88_C6E3)
    }

    @inlinable @inline(__always)
    static func fold(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let product = a.multipliedFullWidth(by: b)
        return product.high ^ product.low
    }
}

/// Where an idempotency key lives in the index: its `KeyHash`. The seed is drawn afresh in each
/// process, so that nobody can choose keys that crowd one slot; a writer's index kept between
/// starts keeps the seed it was made with (a secret of the data directory, like the index).
package enum IdempotencySlot {
    package static let seed = UInt64.random(in: 1...UInt64.max)

    package static func key(_ key: String, seed: UInt64 = seed) -> Key128 {
        var key = key
        return Key128(a: key.withUTF8 { KeyHash.hash(UnsafeRawBufferPointer($0), seed: seed) }, b: 0)
    }
}

/// Which commands share a space of idempotency keys (docs/ledger-format.md, §2). Votes, live
/// and imported, share one: an import's `vote_id` sent again, or with another election, is the
/// same vote, or a `conflict`. Every other kind of command has a space of its own, so that a key
/// sent with one kind never meets a key of another: a juror who sends `jury.score` with an
/// import row's `vote_id` as its key makes a score's key, and the row still lands.
package enum IdempotencyScope: Hashable, Sendable {
    case votes
    /// The op name of the command (`jury.score`, `vote.invalidate`, ...).
    case command(String)

    /// Borrowing: an initializer's parameter is otherwise taken owned, which copied the
    /// command on every keyed submission.
    package init(_ command: borrowing Command) {
        if command.isVote { self = .votes } else { self = .command(command.name) }
    }

    /// The scope of the command that produced `event`.
    package init(_ event: Event) {
        if case .voteCast = event { self = .votes } else { self.init(Command(reconstructing: event)) }
    }

    /// The key's slot in the index: a vote's key alone (votes are nearly every keyed event),
    /// any other's after its op name and a NUL, so that the spaces spread apart.
    package func slot(_ key: String, seed: UInt64 = IdempotencySlot.seed) -> Key128 {
        switch self {
        case .votes: IdempotencySlot.key(key, seed: seed)
        case .command(let op): IdempotencySlot.key(op + "\u{0}" + key, seed: seed)
        }
    }
}

