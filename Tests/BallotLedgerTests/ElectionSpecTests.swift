import Testing
import TestSupport
@testable import BallotLedger
@testable import BallotDomain

@Suite struct ElectionSpecTests {
    @Test(arguments: ["imdi-2021", "imdi-2022"])
    func theSeedElectionsLoadAndSetUpALedger(name: String) throws {
        let spec = try ElectionSpec.load(path: Fixtures.electionFile(name))
        let definition = try spec.definition()
        #expect(definition.id.value == name)
        #expect(definition.criteria.map(\.id.value) == ["results", "settlement", "development", "differentiation"])
        #expect(definition.eligibility == .standard)
        let dir = TemporaryDirectory()
        let ledger = try Ledger(path: dir.sub("ledger"), options: Fixtures.options(), clock: ManualClock("2022-10-01T00:00:00Z"))
        let outcomes = try ledger.submit(try spec.commands().map { Submission($0, by: Fixtures.admin) })
        #expect(outcomes.allSatisfy { $0.receipt != nil }, "\(outcomes)")
        #expect(ledger.state[definition.id]?.nominees.count == (name == "imdi-2021" ? 6 : 5))
    }

    @Test func theSeedsNamesSurvive() throws {
        let spec = try ElectionSpec.load(path: Fixtures.electionFile("imdi-2021"))
        #expect(try spec.nominations().map(\.name).contains("Lørenskog"))
        #expect(try ElectionSpec.load(path: Fixtures.electionFile("imdi-2022")).nominations().map(\.name).contains("Rælingen"))
    }

    @Test func aBadFileNamesTheFileAndTheField() throws {
        let missingTitle = #"{"id": "x", "voting_window": {"opens_at": "2022-11-01T00:00:00Z", "closes_at": "2022-11-11T00:00:00Z"}, "criteria": []}"#
        let error = #expect(throws: LedgerError.self) { try ElectionSpec.decode(Array(missingTitle.utf8), source: "x.json") }
        #expect("\(error!)" == "x.json: missing field 'title'")

        let wrongType = #"{"id": "x", "title": "X", "voting_window": {"opens_at": 5, "closes_at": "b"}, "criteria": []}"#
        let typeError = #expect(throws: LedgerError.self) { try ElectionSpec.decode(Array(wrongType.utf8), source: "y.json") }
        #expect("\(typeError!)".contains("voting_window.opens_at"))

        let badTime = #"{"id": "x", "title": "X", "voting_window": {"opens_at": "soon", "closes_at": "2022-11-11T00:00:00Z"}, "criteria": [{"id": "a", "title": "A", "weight": 1}]}"#
        let spec = try ElectionSpec.decode(Array(badTime.utf8), source: "z.json")
        #expect(throws: DomainError(.badRequest, "voting_window.opens_at 'soon' is not an RFC 3339 time")) { try spec.definition() }

        #expect(throws: LedgerError.self) { try ElectionSpec.load(path: "/nonexistent/election.json") }
        #expect(throws: LedgerError.self) { try ElectionSpec.decode(Array("not json".utf8), source: "n.json") }
    }
}

@Suite struct VoterHasherTests {
    @Test func normalisesWhitespaceAndASCIICase() throws {
        let h = Fixtures.hasher
        #expect(h.key(for: "  Ola.Nordmann@Example.NO\n") == h.key(for: "ola.nordmann@example.no"))
        #expect(h.key(for: "+47 912 34 567") != h.key(for: "+4791234567"))
        #expect(VoterHasher.normalize("  ÅSE@X.no ") == "Åse@x.no")   // ASCII letters only
        let other = try VoterHasher(secret: Array("another secret of enough bytes".utf8))
        #expect(other.key(for: "ola") != h.key(for: "ola"))
        #expect(throws: LedgerError.self) { try VoterHasher(secret: [1, 2, 3]) }
    }

    @Test func isHMACSHA256OfTheNormalisedIdentifier() throws {
        // Expected value from Python's hmac module: HMAC-SHA256(0x0b × 20, "hi there").
        let h = try VoterHasher(secret: [UInt8](repeating: 0x0b, count: 20))
        #expect(h.key(for: " Hi There ").hex == "457dcb1b1c1bf655d15da1b98306f5aa511e19bd15debdc85c3134592039578e")
    }
}
