/// The public vote for one election: valid votes and share per nominee, invalidations applied.
/// Order: most votes first; ties by nominee id (byte order).
public struct Tally: Sendable {
    public struct Entry: Sendable, Equatable, Ranked {
        public var rank: Int
        public var nominee: NomineeID
        public var name: String
        public var votes: Int
        /// votes / valid votes, or 0 when there are none.
        public var share: Double
    }

    public var election: ElectionID
    public var lastSeq: UInt64
    public var votesCast: Int
    public var validVotes: Int
    public var invalidated: Int
    public var entries: [Entry]

    public init(_ e: borrowing ElectionState) {
        election = e.id
        lastSeq = e.lastSeq
        votesCast = e.votesCast
        validVotes = e.validVotes
        invalidated = e.invalidatedVotes
        let total = validVotes
        let unranked = e.nominees.enumerated().map { i, n in
            Entry(rank: 0, nominee: n.id, name: n.name, votes: e.votes[i],
                  share: total > 0 ? Double(e.votes[i]) / Double(total) : 0)
        }
        entries = ranked(unranked) { $0.votes != $1.votes ? $0.votes > $1.votes : $0.nominee < $1.nominee }
    }

    public var json: JSONValue {
        .object([
            ("election", .string(election.value)),
            ("last_seq", .uint(lastSeq)),
            ("votes_cast", .int(votesCast)),
            ("valid_votes", .int(validVotes)),
            ("invalidated", .int(invalidated)),
            ("nominees", .array(entries.map { e in
                .object([("rank", .int(e.rank)), ("nominee", .string(e.nominee.value)), ("name", .string(e.name)),
                         ("votes", .int(e.votes)), ("share", .double(e.share))])
            })),
        ])
    }
}

/// An entry that gets its place from its position in an ordering.
protocol Ranked {
    var rank: Int { get set }
}

/// `entries` in the order `precedes` gives, numbered from 1.
func ranked<E: Ranked>(_ entries: [E], by precedes: (E, E) -> Bool) -> [E] {
    entries.sorted(by: precedes).enumerated().map { i, entry in
        var placed = entry
        placed.rank = i + 1
        return placed
    }
}
