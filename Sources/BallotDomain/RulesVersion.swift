/// Which rules an election is decided by. Recorded in its `election.defined` event, so that a
/// replay decides every event of the election by the rules it was run under, whatever this
/// build's newest rules are: a rule is changed by adding a version, never by changing one
/// (docs/ledger-format.md, "Rules versions"). A definition recorded before versions existed
/// has none and is version 1.
public enum RulesVersion: UInt16, Sendable, CaseIterable, Comparable, CustomStringConvertible {
    /// The rules as they were first recorded: a voter is the identifier as sent, with
    /// surrounding whitespace removed and ASCII letters lower-cased, and one key per voter
    /// across every election.
    case v1 = 1
    /// Version 1, and voters are normalised (`VoterIdentityRule.normalized`): phone numbers to
    /// E.164 with the election's default country code, every other identifier (e-mail
    /// addresses first of all) by Unicode NFKC with case folding; and each voter's key is per
    /// election, so that the
    /// same person cannot be linked across elections by reading the ledger.
    case v2 = 2

    /// What a new definition gets unless it names a version.
    public static let latest = RulesVersion.v2

    public static func < (a: RulesVersion, b: RulesVersion) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "rules version \(rawValue)" }

    /// How a voter's identifier becomes the text hashed into their key.
    public var voterIdentity: VoterIdentityRule {
        switch self {
        case .v1: .asciiCaseFolded
        case .v2: .normalized
        }
    }

    /// Whether the voter key names the election (see `v2`).
    public var keysVotersPerElection: Bool { self >= .v2 }
}

/// How a voter identifier is normalised before it is hashed (the hashing is the intake's:
/// `VoterIdentity` in BallotProtocol).
public enum VoterIdentityRule: Sendable {
    /// Surrounding whitespace removed, ASCII letters lower-cased: `Kari@X.no` and
    /// ` kari@x.no` are one voter; NFC and NFD forms, full-width letters and the forms of one
    /// phone number are not.
    case asciiCaseFolded
    /// Surrounding whitespace removed; then one of digits, spaces, `-`, `.`, `(`, `)` with an
    /// optional leading `+` is a phone number, written in E.164 (`+` country code and number:
    /// a leading `+` or `00` gives the country code, otherwise the election's default is put
    /// before the number, less one leading trunk `0`); anything else (an e-mail address, a
    /// national id) is taken by Unicode NFKC with case folding, as version 1 folds ASCII.
    case normalized
}
