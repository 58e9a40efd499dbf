public import BallotCollections

/// Who has voted, in every election: one table of the voters' keys (their first 96 bits, mixed
/// with the election's position so that one table holds every election, see `key`), each
/// tagged with the sequence number of the vote, low 32 bits (`tag`).
///
/// The tag is what lets the table outlive the process (docs/architecture.md, "What is kept
/// between starts"). A table kept in a file may be ahead of the state it is loaded with (its
/// pages were written up to the moment the process died) and may hold voters of a batch that
/// never committed. So a voter found in it counts as having voted before event `s` only if the
/// tag is earlier than `s` and the event the tag names is that voter's vote in that election
/// (`lookupVote`, which reads the event); any other entry is taken over by the vote at hand.
/// A genuine repeat costs that one read; a new voter, nearly every vote, costs none.
///
/// The table is shared by copies of a `LedgerState` (it may hold millions of keys, in a file);
/// a dry run works on a copy with an `overlay` of its own, and never changes the table.
public struct VoterRegister: Sendable {
    let table: TaggedKeySet
    /// A dry run's own voters, looked at first; nil outside a dry run.
    private var overlay: TaggedKeySet?

    public init(_ table: TaggedKeySet = TaggedKeySet()) { self.table = table }

    /// The table itself (to keep it, or to make room in it).
    public var keys: TaggedKeySet { table }

    /// A copy whose additions go to an overlay of its own: the register of a dry run.
    func forked() -> VoterRegister {
        var copy = self
        copy.overlay = TaggedKeySet(capacity: 64)
        return copy
    }

    /// The key of `voter` (the first 128 bits of their keyed hash) in the election at position
    /// `election`: the voter's bits mixed with the election's, so that the same person in two
    /// elections (rules version 1 keys a voter alike everywhere) is two keys.
    @inline(__always)
    public static func key(_ voter: Key128, election: Int) -> Key128 { key(voter, mixing: mixer(election: election)) }

    /// What a voter's key is mixed with in the election at `election` (one per election, so
    /// that a run of its votes computes it once).
    @inline(__always)
    static func mixer(election: Int) -> Key128 {
        let e = UInt64(truncatingIfNeeded: election)
        return Key128(a: mix(e &+ 0x9E37_79B9_7F4A_7C15), b: mix(e &+ 0x632B_E59B_D9B4_E019))
    }

    @inline(__always)
    static func key(_ voter: Key128, mixing m: Key128) -> Key128 { Key128(a: voter.a ^ m.a, b: voter.b ^ m.b) }

    /// splitmix64's finaliser.
    @inline(__always)
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The tag of event `seq`: its low 32 bits, never 0 (a ledger holds fewer than 2^32 events:
    /// `Limits.events`; a hostile one past that reads oddly but safely).
    @inline(__always)
    public static func tag(_ seq: UInt64) -> UInt32 { max(1, UInt32(truncatingIfNeeded: seq)) }

    /// Whether an entry tagged `tag` found for a vote at event `seq` is an earlier vote of the
    /// same voter: an earlier tag, and `isTheirs(tag)` (the event there is their vote).
    @inline(__always)
    static func isEarlierVote(tag: UInt32, before seq: UInt64, isTheirs: (UInt64) -> Bool) -> Bool {
        tag < Self.tag(seq) && isTheirs(UInt64(tag))
    }

    /// Whether `voter` voted in the election at `election` before event `seq`.
    func hasVoted(_ voter: Key128, election: Int, before seq: UInt64, isTheirs: (UInt64) -> Bool) -> Bool {
        let key = Self.key(voter, election: election)
        if let overlay, overlay.contains(key) { return true }
        guard let tag = table.tag(of: key) else { return false }
        return Self.isEarlierVote(tag: tag, before: seq, isTheirs: isTheirs)
    }

    /// Records that event `seq` is `voter`'s vote in the election at `election`. An entry for
    /// them already there is taken over when `takingOver` (the rules just accepted this vote, so
    /// that entry is not their vote), or when it names a later event; else it stays. Returns
    /// what the table held before, for a journal: nil when the key was new.
    @discardableResult
    func add(_ voter: Key128, election: Int, seq: UInt64, takingOver: Bool) -> (key: Key128, previous: UInt32?) {
        let key = Self.key(voter, election: election), tag = Self.tag(seq)
        if let overlay { return (key, overlay.insert(key, tag: tag)) }
        guard let previous = table.insert(key, tag: tag) else { return (key, nil) }
        if takingOver || previous >= tag { table.retag(key, tag: tag) }
        return (key, previous)
    }

    /// Takes back `add`: the key removed, or its tag put back.
    func takeBack(_ key: Key128, previous: UInt32?) {
        if let previous { table.retag(key, tag: previous) } else { table.remove(key) }
    }
}
