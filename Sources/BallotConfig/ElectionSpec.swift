import Foundation
public import BallotDomain

/// An election as written in a data file (`config/elections/*.json`) or sent with
/// `election.define`: the definition, and optionally its nominees and jurors. Field names are
/// snake_case; times are RFC 3339.
public struct ElectionSpec: Codable, Sendable {
    public struct Window: Codable, Sendable {
        public var opensAt: String
        public var closesAt: String
    }
    public struct Scale: Codable, Sendable {
        public var min: Int32
        public var max: Int32
    }
    public struct EligibilitySpec: Codable, Sendable {
        public var minGoalAttainmentDirect: Double
        public var minGoalAttainmentAfterOneYear: Double
    }
    public struct CriterionSpec: Codable, Sendable {
        public var id: String
        public var title: String
        public var weight: Double
    }
    public struct FormulaSpec: Codable, Sendable {
        public var publicWeight: Double
        public var juryWeight: Double
    }
    public struct NomineeSpec: Codable, Sendable {
        public var id: String
        public var name: String
        public var goalAttainmentDirect: Double
        public var goalAttainmentAfterOneYear: Double
    }
    public struct JurorSpec: Codable, Sendable {
        public var id: String
        public var name: String
    }

    public var id: String
    public var title: String
    public var votingWindow: Window
    public var scoreScale: Scale?
    public var eligibility: EligibilitySpec?
    public var criteria: [CriterionSpec]
    public var formula: FormulaSpec?
    public var publicStandings: Bool?
    public var seriesBucketSeconds: Int64?
    /// The rules version (docs/ledger-format.md); the newest this build knows when absent.
    public var rulesVersion: Int?
    /// The country calling code for phone numbers given without one (rules version 2 on).
    public var voterPhoneCountryCode: Int?
    /// Whether certification waits for a witnessed checkpoint (`ElectionDefinition.witnessesRequired`).
    public var witnessesRequired: Bool?
    /// "required": every score signed by its juror's key; "optional" (or absent): a signed
    /// score is checked, an unsigned one taken (`ElectionDefinition.jurySignatures`).
    public var jurySignatures: String?
    /// How many jurors co-sign the result before it is certified; 0 or absent: none.
    public var juryQuorum: Int?
    public var nominees: [NomineeSpec]?
    public var jurors: [JurorSpec]?

    /// Decodes a spec from JSON bytes; `source` names the file (or op) in errors.
    public static func decode(_ json: [UInt8], source: String) throws -> ElectionSpec {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do {
            return try decoder.decode(ElectionSpec.self, from: Data(json))
        } catch let error as DecodingError {
            throw ConfigError(path: source, reason: Self.describe(error))
        }
    }

    /// The spec as JSON, in the data file's form (snake_case, absent fields left out, keys
    /// sorted): what `election.define` sends.
    /// Fails only for a number JSON cannot hold (a weight of infinity), which no decoded spec has.
    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self))
    }

    /// Reads and decodes the data file at `path`.
    public static func load(path: String) throws -> ElectionSpec {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(path: path, reason: "cannot be read (missing, or not a readable file)")
        }
        return try decode(Array(data), source: path)
    }

    /// The validated election definition.
    public func definition() throws(DomainError) -> ElectionDefinition {
        let electionID = try Slug(id, what: "election id")
        guard let opens = Timestamp(rfc3339: votingWindow.opensAt) else {
            throw DomainError(.badRequest, "voting_window.opens_at '\(votingWindow.opensAt)' is not an RFC 3339 time")
        }
        guard let closes = Timestamp(rfc3339: votingWindow.closesAt) else {
            throw DomainError(.badRequest, "voting_window.closes_at '\(votingWindow.closesAt)' is not an RFC 3339 time")
        }
        var criteria: [Criterion] = []
        for c in self.criteria {
            criteria.append(Criterion(id: try Slug(c.id, what: "criterion id"), title: c.title, weight: c.weight))
        }
        let definition = ElectionDefinition(
            id: electionID, title: title, opensAt: opens, closesAt: closes,
            scale: scoreScale.map { ScoreScale(min: $0.min, max: $0.max) } ?? ScoreScale(min: 1, max: 10),
            eligibility: eligibility.map {
                Eligibility(minDirect: $0.minGoalAttainmentDirect, minAfterOneYear: $0.minGoalAttainmentAfterOneYear)
            } ?? .standard,
            criteria: criteria,
            formula: formula.map { Formula(publicWeight: $0.publicWeight, juryWeight: $0.juryWeight) } ?? .evenSplit,
            publicStandings: publicStandings ?? false,
            seriesBucketSeconds: seriesBucketSeconds ?? 3600,
            rules: try rules(),
            phoneCountryCode: try phoneCountryCode(),
            witnessesRequired: witnessesRequired ?? false,
            jurySignatures: try jurySignaturePolicy())
        try definition.validate()
        return definition
    }

    private func rules() throws(DomainError) -> RulesVersion {
        guard let rulesVersion else { return .latest }
        guard let version = UInt16(exactly: rulesVersion).flatMap(RulesVersion.init(rawValue:)) else {
            throw DomainError(.badRequest, "election '\(id)': rules_version is \(rulesVersion); this build knows \(RulesVersion.allCases.map { "\($0.rawValue)" }.joined(separator: " and "))")
        }
        return version
    }

    private func jurySignaturePolicy() throws(DomainError) -> JurySignaturePolicy {
        let required: Bool
        switch jurySignatures {
        case nil, "optional": required = false
        case "required": required = true
        case let other?: throw DomainError(.badRequest, "election '\(id)': jury_signatures is '\(other.prefix(40))'; it is \"required\" or \"optional\"")
        }
        let quorum = juryQuorum ?? 0
        guard (0...Limits.juryQuorum).contains(quorum) else {
            throw DomainError(.badRequest, "election '\(id)': jury_quorum is \(quorum); it is from 0 (no co-signing) to \(Limits.juryQuorum) jurors")
        }
        return JurySignaturePolicy(required: required, quorum: quorum)
    }

    private func phoneCountryCode() throws(DomainError) -> UInt16 {
        guard let voterPhoneCountryCode else { return 47 }
        guard let code = UInt16(exactly: voterPhoneCountryCode) else {
            throw DomainError(.badRequest, "election '\(id)': voter_phone_country_code is \(voterPhoneCountryCode); a country calling code is 1 to 999")
        }
        return code
    }

    /// The nominations listed with the election.
    public func nominations() throws(DomainError) -> [Nomination] {
        var out: [Nomination] = []
        for n in nominees ?? [] {
            out.append(Nomination(id: try Slug(n.id, what: "nominee id"), name: n.name,
                                  goalAttainmentDirect: n.goalAttainmentDirect,
                                  goalAttainmentAfterOneYear: n.goalAttainmentAfterOneYear))
        }
        return out
    }

    /// The jurors listed with the election.
    public func jurorList() throws(DomainError) -> [(id: JurorID, name: String)] {
        var out: [(JurorID, String)] = []
        for j in jurors ?? [] { out.append((try Slug(j.id, what: "juror id"), j.name)) }
        return out
    }

    /// The commands that set the election up: define, then nominate, then register jurors.
    public func commands() throws(DomainError) -> [Command] {
        let d = try definition()
        // Refused whole, before anything is written: a juror listed here has no key.
        if d.jurySignatures != .none, let first = jurors?.first {
            throw DomainError(.jurorSignature, "election '\(d.id)' asks for its jurors' signatures, and juror '\(first.id)' is listed with it without a key; leave the jurors out of the file and add each with juror.add and their key")
        }
        return [.defineElection(d)]
            + (try nominations()).map { .addNominee(election: d.id, nomination: $0) }
            + (try jurorList()).map { .addJuror(election: d.id, juror: $0.id, name: $0.name) }
    }

    static func describe(_ error: DecodingError) -> String {
        // Keys are reported as the file spells them (snake_case), not as Swift names them.
        func snake(_ name: String) -> String {
            name.reduce(into: "") { out, c in
                if c.isUppercase { out += "_" + c.lowercased() } else { out.append(c) }
            }
        }
        func path(_ keys: [any CodingKey]) -> String {
            let p = keys.map { $0.intValue.map { "[\($0)]" } ?? ".\(snake($0.stringValue))" }.joined()
            return p.isEmpty ? "the top level" : String(p.drop { $0 == "." })
        }
        switch error {
        case .keyNotFound(let key, let ctx): return "missing field '\(path(ctx.codingPath + [key]))'"
        case .typeMismatch(let type, let ctx): return "field '\(path(ctx.codingPath))' should be \(type)"
        case .valueNotFound(let type, let ctx): return "field '\(path(ctx.codingPath))' is null; expected \(type)"
        case .dataCorrupted(let ctx): return "not valid JSON at '\(path(ctx.codingPath))': \(ctx.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}
