public import BallotDomain
public import BallotAudit
public import BallotFormat

/// What changed between two checkpoints: the events appended, each election's votes, and the
/// consistency proof that the later tree extends the earlier one.
public struct CheckpointDiff {
    public let from: (seq: UInt64, checkpoint: Checkpoint)
    public let to: (seq: UInt64, checkpoint: Checkpoint)
    public let proof: [MerkleHash]
    public let events: [EventKind: Int]
    public let before: LedgerState
    public let after: LedgerState

    public init(from: (UInt64, Checkpoint), to: (UInt64, Checkpoint), proof: [MerkleHash], events: [EventKind: Int],
                before: LedgerState, after: LedgerState) {
        self.from = from
        self.to = to
        self.proof = proof
        self.events = events
        self.before = before
        self.after = after
    }

    /// Per election, per nominee: valid votes before and after.
    var votes: [(election: ElectionID, nominees: [(nominee: NomineeID, before: Int, after: Int)])] {
        after.elections.map { e in
            let old = before[e.id]
            return (e.id, e.nominees.enumerated().map { i, n in
                (n.id, old.flatMap { o in o.ordinal(of: n.id).map { o.votes[$0] } } ?? 0, e.votes[i])
            })
        }
    }

    public var text: String {
        var lines = [
            "from: checkpoint at event \(from.seq): events 1…\(from.checkpoint.size), root \(from.checkpoint.root.hex), \(from.checkpoint.takenAt.rfc3339)",
            "to:   checkpoint at event \(to.seq): events 1…\(to.checkpoint.size), root \(to.checkpoint.root.hex), \(to.checkpoint.takenAt.rfc3339)",
            "both signatures verify; the later ledger extends the earlier one (RFC 9162 consistency proof, \(proof.count) hashes, checked)",
            "events \(from.checkpoint.size + 1)…\(to.checkpoint.size):",
        ]
        for kind in EventKind.allCases where events[kind] != nil {
            lines.append("  \(kind): \(events[kind]!)")
        }
        for election in votes {
            lines.append("\(election.election):")
            for n in election.nominees {
                let delta = n.after - n.before
                lines.append("  \(n.nominee): \(n.before) → \(n.after) valid votes (\(delta >= 0 ? "+" : "")\(delta))")
            }
        }
        lines.append("proof: " + proof.map(\.hex).joined(separator: " "))
        return lines.joined(separator: "\n")
    }

    public var json: JSONValue {
        func c(_ x: (seq: UInt64, checkpoint: Checkpoint)) -> JSONValue {
            .object([("seq", .uint(x.seq)), ("size", .uint(x.checkpoint.size)), ("root", .string(x.checkpoint.root.hex)),
                     ("taken_at", .string(x.checkpoint.takenAt.rfc3339))])
        }
        return .object([
            ("from", c(from)), ("to", c(to)), ("consistent", .bool(true)),
            ("proof", .array(proof.map { .string($0.hex) })),
            ("events", .object(EventKind.allCases.compactMap { k in events[k].map { ("\(k)", .int(Int64($0))) } })),
            ("votes", .object(votes.map { e in
                ("\(e.election)", .object(e.nominees.map { n in
                    ("\(n.nominee)", .object([("before", .int(Int64(n.before))), ("after", .int(Int64(n.after)))]))
                }))
            })),
        ])
    }
}
