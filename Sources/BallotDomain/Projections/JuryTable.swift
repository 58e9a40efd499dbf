/// The jury's scores for one election: per nominee, per criterion, the current scores (amended
/// ones replaced), their mean, and the weighted total over the criteria that have scores.
public struct JuryTable: Sendable {
    public struct CriterionResult: Sendable {
        public var criterion: CriterionID
        public var weight: Double
        /// Current scores by juror, in juror id order, with the event that set each and
        /// whether its juror signed it.
        public var scores: [(juror: JurorID, score: Int32, seq: UInt64, signed: Bool)]
        public var mean: Double? { scores.isEmpty ? nil : Double(scores.reduce(0) { $0 + Int64($1.score) }) / Double(scores.count) }
    }

    public struct Row: Sendable {
        public var nominee: NomineeID
        public var name: String
        public var criteria: [CriterionResult]
        /// Σ weight × mean / Σ weight over the criteria that have at least one score; nil if none has.
        public var weighted: Double?
        /// `weighted` mapped from the score scale onto 0…1 (0 when there are no scores).
        public var normalized: Double
    }

    public var election: ElectionID
    public var lastSeq: UInt64
    public var closed: Bool
    public var scale: ScoreScale
    public var rows: [Row]
    /// Whether the election asks for jurors' signatures: its table then shows, per score, the
    /// event that set it (what a signed amendment names) and whether it was signed.
    public var showsSignatures: Bool

    public init(_ e: borrowing ElectionState) {
        election = e.id
        lastSeq = e.lastSeq
        closed = e.juryClosed
        scale = e.definition.scale
        showsSignatures = e.definition.jurySignatures != .none
        let jurors = e.jurors.map(\.id).sorted()
        let scale = e.definition.scale
        rows = e.nominees.map { n in
            let criteria = e.definition.criteria.map { c in
                CriterionResult(criterion: c.id, weight: c.weight, scores: jurors.compactMap { j in
                    let slot = ScoreSlot(juror: j, nominee: n.id, criterion: c.id)
                    return e.scores[slot].map { (j, $0.score, $0.seq, e.isSigned(slot)) }
                })
            }
            var sum = 0.0
            var weights = 0.0
            for c in criteria {
                if let mean = c.mean {
                    sum += c.weight * mean
                    weights += c.weight
                }
            }
            let weighted = weights > 0 ? sum / weights : nil
            let normalized = weighted.map { ($0 - Double(scale.min)) / Double(scale.max - scale.min) } ?? 0
            return Row(nominee: n.id, name: n.name, criteria: criteria, weighted: weighted, normalized: normalized)
        }
    }

    public func row(_ nominee: NomineeID) -> Row? { rows.first { $0.nominee == nominee } }

    /// The first nominee and criterion, in definition order, with no score at all.
    public var firstMissing: (nominee: NomineeID, criterion: CriterionID)? {
        for row in rows {
            for c in row.criteria where c.scores.isEmpty { return (row.nominee, c.criterion) }
        }
        return nil
    }

    public var json: JSONValue {
        .object([
            ("election", .string(election.value)),
            ("last_seq", .uint(lastSeq)),
            ("closed", .bool(closed)),
            ("scale", .object([("min", .int(Int64(scale.min))), ("max", .int(Int64(scale.max)))])),
            ("nominees", .array(rows.map { row in
                .object([
                    ("nominee", .string(row.nominee.value)),
                    ("name", .string(row.name)),
                    ("criteria", .array(row.criteria.map { c in
                        .object([
                            ("criterion", .string(c.criterion.value)),
                            ("weight", .double(c.weight)),
                            ("scores", .object(c.scores.map { ($0.juror.value, .int(Int64($0.score))) })),
                            ("mean", c.mean.map(JSONValue.double) ?? .null),
                        ] + (showsSignatures ? [
                            ("events", .object(c.scores.map { ($0.juror.value, .uint($0.seq)) })),
                            ("signed", .object(c.scores.map { ($0.juror.value, .bool($0.signed)) })),
                        ] : []))
                    })),
                    ("weighted", row.weighted.map(JSONValue.double) ?? .null),
                    ("normalized", .double(row.normalized)),
                ])
            })),
        ])
    }
}
