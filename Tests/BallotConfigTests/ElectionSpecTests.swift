import Testing
import TestSupport
@testable import BallotConfig
import BallotLedger
import BallotFormat
import BallotAudit
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
        let error = #expect(throws: ConfigError.self) { try ElectionSpec.decode(Array(missingTitle.utf8), source: "x.json") }
        #expect("\(error!)" == "x.json: missing field 'title'")

        let wrongType = #"{"id": "x", "title": "X", "voting_window": {"opens_at": 5, "closes_at": "b"}, "criteria": []}"#
        let typeError = #expect(throws: ConfigError.self) { try ElectionSpec.decode(Array(wrongType.utf8), source: "y.json") }
        #expect("\(typeError!)".contains("voting_window.opens_at"))

        let badTime = #"{"id": "x", "title": "X", "voting_window": {"opens_at": "soon", "closes_at": "2022-11-11T00:00:00Z"}, "criteria": [{"id": "a", "title": "A", "weight": 1}]}"#
        let spec = try ElectionSpec.decode(Array(badTime.utf8), source: "z.json")
        #expect(throws: DomainError(.badRequest, "voting_window.opens_at 'soon' is not an RFC 3339 time")) { try spec.definition() }

        #expect(throws: ConfigError.self) { try ElectionSpec.load(path: "/nonexistent/election.json") }
        #expect(throws: ConfigError.self) { try ElectionSpec.decode(Array("not json".utf8), source: "n.json") }
    }

    /// An election that asks for jurors' signatures cannot list its jurors (they have no key
    /// there): refused whole, before any of its events is written.
    @Test func aSigningJuryIsNotListedInTheFile() throws {
        let json = """
            {"id": "signed", "title": "Signed", "voting_window": {"opens_at": "2023-11-01T00:00:00Z", "closes_at": "2023-11-11T00:00:00Z"},
             "criteria": [{"id": "results", "title": "Results", "weight": 1}], "jury_signatures": "required", "jury_quorum": 1,
             "jurors": [{"id": "anne", "name": "Anne"}]}
            """
        let spec = try ElectionSpec.decode(Array(json.utf8), source: "test")
        #expect(throws: DomainError.self) { try spec.commands() }
        do {
            _ = try spec.commands()
        } catch {
            #expect(error.code == .jurorSignature && error.message.contains("'anne'"))
        }
    }
}
