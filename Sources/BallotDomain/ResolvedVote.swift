public import BallotCollections

/// A vote whose election and nominee are already found, as positions in `LedgerState`: the
/// form in which an auditor's replay checks and counts millions of votes without making
/// Strings of ids it has seen before. The rule is the one `decide` applies
/// (`ElectionState.checkVote`). Positions never change: elections and nominees are only added.
public struct ResolvedVote: Sendable {
    /// The election's position in `LedgerState.elections`.
    public var election: Int
    /// The nominee's position in that election's `nominees`.
    public var nominee: Int
    /// The first 128 bits of the voter's key, all that the duplicate check keeps.
    public var voter: Key128
    public var castAt: Timestamp
    /// The length of the vote's channel in UTF-8 bytes (0 when it has none).
    public var channelBytes: Int

    public init(election: Int, nominee: Int, voter: Key128, castAt: Timestamp, channelBytes: Int) {
        self.election = election
        self.nominee = nominee
        self.voter = voter
        self.castAt = castAt
        self.channelBytes = channelBytes
    }
}

/// A resolved vote with the event that recorded it: what replay checks and counts, a run of
/// them at a time (`LedgerState.replay(_:inElection:refused:)`).
public struct RecordedVote: Sendable {
    public var vote: ResolvedVote
    /// The event's sequence number and timestamp (the rule's "now").
    public var seq: UInt64
    public var recordedAt: Timestamp

    public init(_ vote: ResolvedVote, seq: UInt64, recordedAt: Timestamp) {
        self.vote = vote
        self.seq = seq
        self.recordedAt = recordedAt
    }
}
