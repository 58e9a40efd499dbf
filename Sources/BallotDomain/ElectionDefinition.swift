/// Everything fixed when an election is defined: the window, the jury's criteria and scale, the
/// entry criterion for nominations and the formula that combines the public vote and the jury.
public struct ElectionDefinition: Sendable, Equatable {
    public var id: ElectionID
    public var title: String
    /// The scheduled voting window, half-open: `opensAt <= cast_at < closesAt`.
    public var opensAt: Timestamp
    public var closesAt: Timestamp
    public var scale: ScoreScale
    public var eligibility: Eligibility
    public var criteria: [Criterion]
    public var formula: Formula
    /// When true, per-nominee standings may be shown while voting is open.
    public var publicStandings: Bool
    /// Width of one bucket of the votes-over-time series, in seconds.
    public var seriesBucketSeconds: Int64
    /// The rules the election is decided by.
    public var rules: RulesVersion
    /// The country calling code put before a phone number given without one (rules version
    /// 2 on; 47, Norway's, unless the definition says otherwise).
    public var phoneCountryCode: UInt16
    /// When true, the result is certified only once a checkpoint covering the certification
    /// is cosigned by the daemon's witness policy (c2sp.org/tlog-witness): `result.certify`
    /// waits for it, then fails clearly. Not a rule: no number depends on it.
    public var witnessesRequired: Bool
    /// Whether scores must be signed by their jurors, and how many jurors co-sign the result.
    public var jurySignatures: JurySignaturePolicy

    public init(id: ElectionID, title: String, opensAt: Timestamp, closesAt: Timestamp,
                scale: ScoreScale = ScoreScale(min: 1, max: 10), eligibility: Eligibility = .standard,
                criteria: [Criterion], formula: Formula = .evenSplit, publicStandings: Bool = false,
                seriesBucketSeconds: Int64 = 3600, rules: RulesVersion = .latest, phoneCountryCode: UInt16 = 47,
                witnessesRequired: Bool = false, jurySignatures: JurySignaturePolicy = .none) {
        self.jurySignatures = jurySignatures
        self.rules = rules
        self.witnessesRequired = witnessesRequired
        self.phoneCountryCode = phoneCountryCode
        self.id = id
        self.title = title
        self.opensAt = opensAt
        self.closesAt = closesAt
        self.scale = scale
        self.eligibility = eligibility
        self.criteria = criteria
        self.formula = formula
        self.publicStandings = publicStandings
        self.seriesBucketSeconds = seriesBucketSeconds
    }

    /// Checks the definition on its own (not against other elections).
    public func validate() throws(DomainError) {
        func bad(_ message: String) -> DomainError { DomainError(.badRequest, "election '\(id)': \(message)") }
        guard !title.isEmpty else { throw bad("title is empty") }
        guard title.utf8.count <= Limits.name else { throw bad("title is \(title.utf8.count) bytes long; at most \(Limits.name)") }
        guard criteria.count <= Limits.criteria else { throw bad("\(criteria.count) criteria; at most \(Limits.criteria)") }
        guard opensAt < closesAt else {
            throw bad("voting_window.opens_at (\(opensAt)) must be before closes_at (\(closesAt))")
        }
        guard scale.min < scale.max, scale.min >= -1_000_000, scale.max <= 1_000_000 else {
            throw bad("score_scale must have min below max, both within ±1,000,000 (got \(scale.min) to \(scale.max))")
        }
        guard !criteria.isEmpty else { throw bad("criteria is empty: the jury needs at least one") }
        var seen = Set<CriterionID>()
        for c in criteria {
            guard seen.insert(c.id).inserted else { throw bad("criterion '\(c.id)' is listed twice") }
            guard c.weight.isFinite, c.weight > 0, c.weight <= Limits.criterionWeight else {
                throw bad("criterion '\(c.id)' has weight \(c.weight); weights must be positive and at most \(Int(Limits.criterionWeight))")
            }
            guard !c.title.isEmpty, c.title.utf8.count <= Limits.name else {
                throw bad("criterion '\(c.id)' title must be 1 to \(Limits.name) bytes")
            }
        }
        for (name, v) in [("min_goal_attainment_direct", eligibility.minDirect),
                          ("min_goal_attainment_after_one_year", eligibility.minAfterOneYear)] {
            guard v.isFinite, (0...100).contains(v) else { throw bad("eligibility.\(name) is \(v); it is a percentage from 0 to 100") }
        }
        let f = formula
        guard f.publicWeight.isFinite, f.juryWeight.isFinite, f.publicWeight >= 0, f.juryWeight >= 0,
              abs(f.publicWeight + f.juryWeight - 1) < 1e-9
        else { throw bad("formula weights \(f.publicWeight) and \(f.juryWeight) must be non-negative and add up to 1") }
        guard (1...31_622_400).contains(seriesBucketSeconds) else {
            throw bad("series_bucket_seconds is \(seriesBucketSeconds); it must be from 1 to 31,622,400 (a year)")
        }
        guard (0...Limits.juryQuorum).contains(jurySignatures.quorum) else {
            throw bad("jury_quorum is \(jurySignatures.quorum); it is from 0 (no co-signing) to \(Limits.juryQuorum) jurors")
        }
        guard (1...999).contains(phoneCountryCode) else {
            throw bad("voter_phone_country_code is \(phoneCountryCode); a country calling code is 1 to 999")
        }
    }

    public func criterion(_ id: CriterionID) -> Criterion? { criteria.first { $0.id == id } }

    /// The start of the window `cast_at` is judged against: the schedule, unless voting was
    /// opened explicitly (which is allowed only before any vote).
    public func effectiveOpensAt(openedAt: Timestamp?) -> Timestamp { openedAt ?? opensAt }

    /// The end of the window (exclusive): the schedule, or just after an explicit close at T,
    /// so that a vote cast at T itself counts, whichever is earlier.
    public func effectiveClosesAt(closedAt: Timestamp?) -> Timestamp {
        guard let closedAt else { return closesAt }
        return min(Timestamp(microseconds: closedAt.microseconds + 1), closesAt)
    }

    /// Voting is over once it was closed or its window has ended.
    public func isVotingOver(at now: Timestamp, closedAt: Timestamp?) -> Bool {
        closedAt != nil || now >= effectiveClosesAt(closedAt: closedAt)
    }

    /// The start of the series bucket that `t` falls in.
    public func bucket(of t: Timestamp) -> Int64 {
        Self.bucket(of: t, origin: opensAt, width: bucketMicroseconds).start
    }

    /// A series bucket's width in microseconds; at least 1 and never a trap, even for a
    /// definition the rules refuse (a replay applies what a damaged ledger holds).
    public var bucketMicroseconds: Int64 {
        let (width, overflow) = seriesBucketSeconds.multipliedReportingOverflow(by: 1_000_000)
        return overflow ? Int64.max : max(1, width)
    }

    /// The bucket of `width` microseconds, counted from `origin`, that `t` is in: its number
    /// (0 the one starting at `origin`, negative before it) and its start.
    /// A time so far from the origin that the arithmetic would overflow (only a damaged or
    /// hostile ledger holds one) is a bucket of its own, numbered as far out as can be.
    static func bucket(of t: Timestamp, origin: Timestamp, width: Int64) -> (number: Int64, start: Int64) {
        let (offset, overflow) = t.microseconds.subtractingReportingOverflow(origin.microseconds)
        guard !overflow, offset > Int64.min + width else { return (t >= origin ? Int64.max : Int64.min, t.microseconds) }
        let index = offset >= 0 ? offset / width : (offset - width + 1) / width
        return (index, origin.microseconds &+ index &* width)
    }
}

/// The jury's score scale: whole numbers from `min` to `max` inclusive.
public struct ScoreScale: Sendable, Equatable {
    public var min: Int32
    public var max: Int32
    public init(min: Int32, max: Int32) {
        self.min = min
        self.max = max
    }
    public func contains(_ score: Int32) -> Bool { score >= min && score <= max }
}

/// The entry criterion: goal attainment in the introduction programme, in percent, both directly
/// after the programme and one year after.
public struct Eligibility: Sendable, Equatable {
    public var minDirect: Double
    public var minAfterOneYear: Double
    public init(minDirect: Double, minAfterOneYear: Double) {
        self.minDirect = minDirect
        self.minAfterOneYear = minAfterOneYear
    }
    /// The award's own rule: at least 50 % at both moments.
    public static let standard = Eligibility(minDirect: 50, minAfterOneYear: 50)
}

/// One of the jury's criteria and its weight in the jury's total.
public struct Criterion: Sendable, Equatable {
    public var id: CriterionID
    public var title: String
    public var weight: Double
    public init(id: CriterionID, title: String, weight: Double) {
        self.id = id
        self.title = title
        self.weight = weight
    }
}

/// The combined assessment: `combined = publicWeight × vote_share + juryWeight × jury_normalized`,
/// where `vote_share` is the nominee's share of valid votes and `jury_normalized` is the weighted
/// mean of its per-criterion mean scores, mapped from the scale onto 0…1.
public struct Formula: Sendable, Equatable {
    public var publicWeight: Double
    public var juryWeight: Double
    public init(publicWeight: Double, juryWeight: Double) {
        self.publicWeight = publicWeight
        self.juryWeight = juryWeight
    }
    public static let evenSplit = Formula(publicWeight: 0.5, juryWeight: 0.5)

    public var text: String {
        "combined = \(publicWeight) × vote_share + \(juryWeight) × jury_normalized; jury_normalized = (Σ weight × criterion_mean / Σ weight − scale_min) / (scale_max − scale_min)"
    }
}

/// A nominated municipality and the goal attainment it showed for the entry criterion.
public struct Nomination: Sendable, Equatable {
    public var id: NomineeID
    public var name: String
    public var goalAttainmentDirect: Double
    public var goalAttainmentAfterOneYear: Double
    public init(id: NomineeID, name: String, goalAttainmentDirect: Double, goalAttainmentAfterOneYear: Double) {
        self.id = id
        self.name = name
        self.goalAttainmentDirect = goalAttainmentDirect
        self.goalAttainmentAfterOneYear = goalAttainmentAfterOneYear
    }
}
