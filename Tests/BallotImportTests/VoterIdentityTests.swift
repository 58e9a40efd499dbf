import Testing
import TestSupport
import BallotClient
@testable import BallotImport
@testable import BallotDomain
@testable import BallotLedger
@testable import BallotFormat
@testable import BallotAudit

/// Voter identity by rules version (issue 18, defect 9): from version 2 one person is one voter
/// whatever form of their identifier arrives, and their key differs from election to election.
@Suite struct VoterIdentityTests {
    let identity = VoterIdentity(hasher: Fixtures.hasher)
    func definition(_ id: String, _ rules: RulesVersion, country: UInt16 = 47) -> ElectionDefinition {
        var d = Fixtures.definition(Fixtures.slug(id))
        d.rules = rules
        d.phoneCountryCode = country
        return d
    }

    /// Forms of one person's identifier: NFC and NFD, full-width letters and case, and the
    /// forms of one phone number.
    static let sameVoter: [[String]] = [
        ["björn@example.no", "bjo\u{0308}rn@example.no", "BJÖRN@EXAMPLE.NO", " Björn@Example.no "],
        ["kari@example.no", "ｋａｒｉ＠ｅｘａｍｐｌｅ．ｎｏ", "Kari@Example.NO"],
        ["+47 40000000", "004740000000", "40000000", "+47 400 00 000", "(+47) 400-00-000", "４０００００００"],
        ["straße@example.de", "STRASSE@example.de"],
    ]

    @Test(arguments: sameVoter) func version2TakesEveryFormForOneVoter(_ forms: [String]) {
        let v2 = definition("award-2026", .v2)
        let keys = Set(forms.map { identity.key(for: $0, in: v2) })
        #expect(keys.count == 1, "\(forms.map { VoterIdentity.normalized($0, phoneCountryCode: 47) })")
    }

    /// The path on the bytes for ASCII identifiers gives what the general rule gives, for random
    /// identifiers of letters, digits, phone punctuation, whitespace and `@` (phone numbers among
    /// them).
    @Test func theASCIIPathAgreesWithTheGeneralRule() {
        let v2 = definition("award-2026", .v2)
        let mixed = Array("aZq9+0 -.()@\t\n\r_xY3".utf8) + [0x0B, 0x0C]
        let phoneLike = Array("0123456789 +-.()\t".utf8)
        var rng = SplitMix64(seed: 17)
        var fast = 0
        for round in 0..<20_000 {
            let alphabet = round % 2 == 0 ? mixed : phoneLike
            let length = Int.random(in: 0..<18, using: &rng)
            let bytes = (0..<length).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &rng)] }
            let text = String(decoding: bytes, as: UTF8.self)
            let general = Fixtures.hasher.key(normalized: VoterIdentity.normalized(text, phoneCountryCode: 47), in: v2.id)
            let viaBytes = bytes.withUnsafeBytes { identity.key(forUTF8: $0, in: v2) }
            #expect(viaBytes == general, "\(bytes)")
            if VoterIdentity.phone(utf8: bytes, country: 47) != nil { fast += 1 }
        }
        #expect(fast > 1_000, "\(fast) of the identifiers were phone numbers")
    }

    @Test func version1KeepsItsRuleForTheLedgersItDecides() {
        let v1 = definition("award-2022", .v1)
        // Only case and surrounding whitespace, in ASCII, made one voter.
        #expect(identity.key(for: " Kari@Example.no", in: v1) == identity.key(for: "kari@example.no", in: v1))
        for forms in Self.sameVoter {
            #expect(Set(forms.map { identity.key(for: $0, in: v1) }).count > 1, "\(forms)")
        }
        // And it is the key the ledger has always held: the election is not in it.
        #expect(identity.key(for: "kari@example.no", in: v1) == Fixtures.hasher.key(for: "kari@example.no"))
        #expect(identity.key(for: "kari@example.no", in: v1) == identity.key(for: "kari@example.no", in: definition("other-2022", .v1)))
    }

    @Test func version2KeysAVoterPerElection() {
        let a = identity.key(for: "kari@example.no", in: definition("award-2026", .v2))
        let b = identity.key(for: "kari@example.no", in: definition("award-2027", .v2))
        #expect(a != b)
        #expect(a != Fixtures.hasher.key(for: "kari@example.no"))
    }

    @Test func phoneNumbersTakeTheElectionsCountryCode() {
        #expect(VoterIdentity.normalized("40000000", phoneCountryCode: 47) == "+4740000000")
        #expect(VoterIdentity.normalized("07700 900123", phoneCountryCode: 44) == "+447700900123")
        #expect(VoterIdentity.normalized("+1 (202) 555-0101", phoneCountryCode: 47) == "+12025550101")
        // Not phone numbers: too long for E.164, too short, or with letters; folded as text.
        #expect(VoterIdentity.normalized("1234567890123456", phoneCountryCode: 47) == "1234567890123456")
        #expect(VoterIdentity.normalized("123", phoneCountryCode: 47) == "123")
        #expect(VoterIdentity.normalized("ID-4711-X", phoneCountryCode: 47) == "id-4711-x")
        // The bytes path (an import row) says what the text path says.
        let v2 = definition("award-2026", .v2)
        for form in Self.sameVoter.joined() {
            var text = form
            let key = text.withUTF8 { identity.key(forUTF8: UnsafeRawBufferPointer($0), in: v2) }
            #expect(key == identity.key(for: form, in: v2), "\(form)")
        }
    }

    @Test func aDefinitionRecordsItsRulesAndOneWithoutIsVersion1() throws {
        for rules in RulesVersion.allCases {
            let d = definition("award-2026", rules, country: 44)
            let record = RecordedEvent(seq: 1, timestamp: Fixtures.time(Fixtures.now), actor: Fixtures.admin, idempotencyKey: "",
                                       event: .electionDefined(d))
            let bytes = RecordCodec.encode(record)
            let back = try bytes.withUnsafeBytes { try RecordCodec.decode($0, seq: 1) }
            guard case .electionDefined(let decoded) = back.event else { Issue.record("not a definition"); continue }
            #expect(decoded.rules == rules)
            #expect(decoded.phoneCountryCode == (rules >= .v2 ? 44 : 47))
        }
    }
}
