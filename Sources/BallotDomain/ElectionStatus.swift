/// Where an election stands, without its counts and voter set: what a reader needs to answer
/// `election.get` and to decide whether standings are still sealed. Small and detached, so the
/// writer can publish one per changed election after each batch without sharing its state.
public struct ElectionStatus: Sendable {
    public let definition: ElectionDefinition
    public let nominees: [Nomination]
    public let jurors: [JurorID]
    public let votingOpenedAt: Timestamp?
    public let votingClosedAt: Timestamp?
    public let juryClosed: Bool
    public let certified: CertifiedResult?
    /// Every vote accepted: the turnout, which is always public.
    public let votesCast: Int
    public let lastSeq: UInt64

    public var id: ElectionID { definition.id }
    public var effectiveOpensAt: Timestamp { definition.effectiveOpensAt(openedAt: votingOpenedAt) }
    public var effectiveClosesAt: Timestamp { definition.effectiveClosesAt(closedAt: votingClosedAt) }
    public func isVotingOver(at now: Timestamp) -> Bool { definition.isVotingOver(at: now, closedAt: votingClosedAt) }

    /// Per-nominee standings may be shown: the election says so, or voting is over.
    public func standingsArePublic(at now: Timestamp) -> Bool { definition.publicStandings || isVotingOver(at: now) }

    public var json: JSONValue {
        let d = definition
        return .object([
            ("id", .string(d.id.value)),
            ("title", .string(d.title)),
            ("voting_window", .object([("opens_at", .string(d.opensAt.rfc3339)), ("closes_at", .string(d.closesAt.rfc3339))])),
            ("effective_window", .object([("opens_at", .string(effectiveOpensAt.rfc3339)), ("closes_at", .string(effectiveClosesAt.rfc3339))])),
            ("score_scale", .object([("min", .int(Int64(d.scale.min))), ("max", .int(Int64(d.scale.max)))])),
            ("eligibility", .object([("min_goal_attainment_direct", .double(d.eligibility.minDirect)),
                                     ("min_goal_attainment_after_one_year", .double(d.eligibility.minAfterOneYear))])),
            ("criteria", .array(d.criteria.map { .object([("id", .string($0.id.value)), ("title", .string($0.title)), ("weight", .double($0.weight))]) })),
            ("formula", .object([("public_weight", .double(d.formula.publicWeight)), ("jury_weight", .double(d.formula.juryWeight))])),
            ("public_standings", .bool(d.publicStandings)),
            ("series_bucket_seconds", .int(d.seriesBucketSeconds)),
            ("rules_version", .int(Int64(d.rules.rawValue))),
            ("voter_phone_country_code", .int(Int64(d.phoneCountryCode))),
            ("witnesses_required", .bool(d.witnessesRequired)),
            ("nominees", .array(nominees.map { .object([("id", .string($0.id.value)), ("name", .string($0.name)),
                                                        ("goal_attainment_direct", .double($0.goalAttainmentDirect)),
                                                        ("goal_attainment_after_one_year", .double($0.goalAttainmentAfterOneYear))]) })),
            ("jurors", .array(jurors.map { .string($0.value) })),
            ("voting_opened_at", votingOpenedAt.map { .string($0.rfc3339) } ?? .null),
            ("voting_closed_at", votingClosedAt.map { .string($0.rfc3339) } ?? .null),
            ("jury_closed", .bool(juryClosed)),
            ("certified", certified.map { .object([("winner", .string($0.winner.value))]) } ?? .null),
            ("votes_cast", .int(votesCast)),
            ("last_seq", .uint(lastSeq)),
        ])
    }
}
