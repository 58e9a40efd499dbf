/// The combined assessment for one election, with every input shown.
///
/// Order: highest `combined` first; ties broken by higher `jury_normalized`, then more votes,
/// then nominee id in byte order. The same order decides the certified winner.
public struct Ranking: Sendable {
    public struct Entry: Sendable, Equatable, Ranked {
        public var rank: Int
        public var nominee: NomineeID
        public var name: String
        public var votes: Int
        public var voteShare: Double
        public var juryWeighted: Double?
        public var juryNormalized: Double
        public var combined: Double
    }

    public static let tieBreak = ["combined desc", "jury_normalized desc", "votes desc", "nominee asc"]

    public var election: ElectionID
    public var lastSeq: UInt64
    public var formula: Formula
    public var certified: CertifiedResult?
    /// The result awaiting the jury's co-signatures, who have signed so far, and how many must.
    public var proposal: (seq: UInt64, result: ResultProposal, cosigners: [JurorID], quorum: Int)?
    public var entries: [Entry]

    public init(_ e: borrowing ElectionState) {
        election = e.id
        lastSeq = e.lastSeq
        formula = e.definition.formula
        certified = e.certified
        proposal = e.proposal.map { ($0.seq, $0.result, e.cosignatures.map(\.juror), e.definition.jurySignatures.quorum) }
        let tally = Tally(e)
        let jury = JuryTable(e)
        let f = formula
        let unranked = tally.entries.map { t in
            let row = jury.row(t.nominee)
            let normalized = row?.normalized ?? 0
            return Entry(rank: 0, nominee: t.nominee, name: t.name, votes: t.votes, voteShare: t.share,
                         juryWeighted: row?.weighted, juryNormalized: normalized,
                         combined: f.publicWeight * t.share + f.juryWeight * normalized)
        }
        entries = ranked(unranked) { a, b in
            if a.combined != b.combined { return a.combined > b.combined }
            if a.juryNormalized != b.juryNormalized { return a.juryNormalized > b.juryNormalized }
            if a.votes != b.votes { return a.votes > b.votes }
            return a.nominee < b.nominee
        }
    }

    public var json: JSONValue {
        .object([
            ("election", .string(election.value)),
            ("last_seq", .uint(lastSeq)),
            ("formula", .object([
                ("public_weight", .double(formula.publicWeight)),
                ("jury_weight", .double(formula.juryWeight)),
                ("text", .string(formula.text)),
            ])),
            ("tie_break", .array(Ranking.tieBreak.map(JSONValue.string))),
            ("certified", certified.map { c in
                // The justification and co-signers only when there are some: a ranking of an
                // election before them is the bytes it always was (its digest is in checkpoints).
                var fields: [(String, JSONValue)] = [("winner", .string(c.winner.value))]
                if !c.justification.isEmpty { fields.append(("justification", .string(c.justification))) }
                if !c.cosignatures.isEmpty { fields.append(("cosigned_by", .array(c.cosignatures.map { .string($0.juror.value) }))) }
                return .object(fields)
            } ?? .null),
        ] + (proposal.map { p in
            [("proposed", JSONValue.object([
                ("event", .uint(p.seq)), ("winner", .string(p.result.winner.value)),
                ("ranking", .array(p.result.ranking.map { .string($0.value) })),
                ("justification", .string(p.result.justification)),
                ("cosigned_by", .array(p.cosigners.map { .string($0.value) })), ("quorum", .int(p.quorum)),
            ]))]
        } ?? []) + [
            ("ranking", .array(entries.map { e in
                .object([
                    ("rank", .int(e.rank)), ("nominee", .string(e.nominee.value)), ("name", .string(e.name)),
                    ("votes", .int(e.votes)), ("vote_share", .double(e.voteShare)),
                    ("jury_weighted", e.juryWeighted.map(JSONValue.double) ?? .null),
                    ("jury_normalized", .double(e.juryNormalized)), ("combined", .double(e.combined)),
                ])
            })),
        ])
    }
}
