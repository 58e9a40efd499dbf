public import BallotDomain
public import BallotLedger
import BallotFormat
import BallotAudit
import Foundation  // NFKC and case folding

/// Turns a voter identifier as it arrives (a live `vote.cast`, an import row) into the voter's
/// key, by the rules of the election voted in (`RulesVersion.voterIdentity`): the one place
/// the daemon and the importer do this, so that a voter is the same voter on both paths.
public struct VoterIdentity: Sendable {
    public let hasher: VoterHasher

    public init(hasher: VoterHasher) { self.hasher = hasher }

    /// The key of `voter` in an election defined by `definition` (nil for an election that
    /// does not exist, whose votes are refused anyway: version 1's key).
    public func key(for voter: String, in definition: ElectionDefinition?) -> VoterKey {
        var voter = voter
        return voter.withUTF8 { key(forUTF8: UnsafeRawBufferPointer($0), in: definition) }
    }

    /// What of an election's definition says how its voters become keys: small, so that an
    /// import keeps one per election rather than a definition per row.
    public struct Rule: Sendable {
        let normalized: Bool
        let phoneCountryCode: UInt16
        let election: ElectionID

        /// The rule of the election `definition` defines (nil: an election that does not exist,
        /// whose votes are refused anyway; version 1's rule).
        public init(_ definition: ElectionDefinition?) {
            normalized = definition?.rules.voterIdentity == .normalized
            phoneCountryCode = definition?.phoneCountryCode ?? 47
            election = definition?.id ?? ElectionID(unchecked: "")
        }
    }

    /// `key(for:in:)` of an identifier given as UTF-8 bytes (an import row's field).
    public func key(forUTF8 raw: UnsafeRawBufferPointer, in definition: ElectionDefinition?) -> VoterKey {
        key(forUTF8: raw, by: Rule(definition))
    }

    /// `key(forUTF8:in:)` by an election's `Rule`. An ASCII identifier (nearly every one: an
    /// e-mail address, a phone number) takes a path on the bytes, with no String and no
    /// Foundation: for ASCII, NFKC changes nothing and case folding lower-cases, so it is
    /// trimmed, then written in E.164 if it is a phone number, else lower-cased, which is what
    /// `normalized` gives it (a test checks the two agree).
    public func key(forUTF8 raw: UnsafeRawBufferPointer, by rule: Rule) -> VoterKey {
        guard rule.normalized else { return hasher.key(forUTF8: raw) }
        if !raw.contains(where: { $0 >= 0x80 }) {
            let trimmed = VoterHasher.trimmed(raw)
            if let number = Self.phone(utf8: trimmed, country: rule.phoneCountryCode) {
                return number.withUnsafeBytes { hasher.key(normalizedUTF8: $0, in: rule.election) }
            }
            return VoterHasher.normalized(trimmed) { hasher.key(normalizedUTF8: $0, in: rule.election) }
        }
        let voter = String(decoding: raw, as: UTF8.self)
        return hasher.key(normalized: Self.normalized(voter, phoneCountryCode: rule.phoneCountryCode), in: rule.election)
    }

    /// The identifier by `VoterIdentityRule.normalized`: surrounding whitespace removed; a
    /// phone number in E.164; anything else by Unicode NFKC with case folding (NFKC, fold,
    /// NFKC again, as Unicode's NFKC_Casefold). ASCII, nearly every identifier, takes a path
    /// without Foundation: NFKC leaves it as it is, and folding lower-cases it.
    public static func normalized(_ raw: String, phoneCountryCode: UInt16) -> String {
        let trimmed = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.utf8.allSatisfy({ $0 < 0x80 }) {
            return phone(trimmed, country: phoneCountryCode) ?? String(trimmed.lowercased())
        }
        let compatible = trimmed.precomposedStringWithCompatibilityMapping
        if let number = phone(compatible, country: phoneCountryCode) { return number }
        return compatible.folding(options: .caseInsensitive, locale: nil).precomposedStringWithCompatibilityMapping
    }

    /// `text` in E.164 (`+`, country code, number), if it is a phone number: digits with
    /// spaces, `-`, `.`, `(` or `)` between them, after an optional `+` (or `00`; either may be
    /// in parentheses) that says
    /// the country code follows; without one, `country` goes before the number, less one
    /// leading trunk `0`. E.164 numbers have at most 15 digits; anything longer, or with fewer
    /// than 4 digits to the number, is not taken for one.
    static func phone(_ text: String, country: UInt16) -> String? {
        phone(utf8: text.utf8, country: country).map { String(decoding: $0, as: UTF8.self) }
    }

    /// `phone` of UTF-8 bytes, giving the number's bytes.
    static func phone(utf8 text: some Collection<UInt8>, country: UInt16) -> [UInt8]? {
        var digits: [UInt8] = []
        var international = false
        for c in text {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digits.append(c)
            case UInt8(ascii: "+") where digits.isEmpty && !international: international = true
            case UInt8(ascii: " "), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "("), UInt8(ascii: ")"):
                guard !digits.isEmpty || c == UInt8(ascii: "(") else { return nil }
            default: return nil
            }
        }
        if !international, digits.starts(with: [UInt8(ascii: "0"), UInt8(ascii: "0")]) {
            international = true
            digits.removeFirst(2)
        }
        if !international {
            if digits.first == UInt8(ascii: "0") { digits.removeFirst() }
            guard digits.count >= 4 else { return nil }
            digits = Array(String(country).utf8) + digits
        }
        guard (4...15).contains(digits.count), digits.first != UInt8(ascii: "0") else { return nil }
        return [UInt8(ascii: "+")] + digits
    }
}
