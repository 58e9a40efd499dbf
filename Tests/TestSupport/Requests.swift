@_exported public import BallotConfig
public import BallotDomain
public import BallotProtocol
import Foundation

// What tests write requests with: typed `Op`s, as ballotctl sends them, with identifiers and
// elections written as literals.

/// `.tally("imdi-2022")`: an identifier written in a test is taken as it is (the daemon checks
/// what it receives; a test of that sends a request written out as JSON). One held in a string:
/// `Fixtures.slug`.
extension Slug: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self.init(unchecked: value) }
}

extension ElectionSpec {
    /// An election data file of config/elections.
    public static func fixture(_ name: String) -> ElectionSpec {
        try! ElectionSpec.load(path: Fixtures.electionFile(name))
    }

    /// An election written as JSON in a test, in the data file's form.
    public init(_ json: JSONValue) {
        self = try! ElectionSpec.decode(json.serialized(), source: "a test's election")
    }

    /// The spec as the `election` field of `election.define` carries it, for a test that then
    /// changes it into something the daemon must refuse.
    public var json: JSONValue {
        try! encoded().withUnsafeBytes { try JSONParser.parse($0) }
    }
}

extension Op {
    /// A vote with the defaults most tests want.
    public static func vote(_ voter: String, _ nominee: NomineeID = "kinn", election: ElectionID = "imdi-2022",
                            castAt: String? = "2022-11-03T10:00:00Z", channel: String = "") -> Op {
        .voteCast(election: election, nominee: nominee, voter: voter, castAt: castAt.map { Timestamp(rfc3339: $0)! }, channel: channel)
    }
}

/// Literals, for requests and results written out in tests. (Not `nil`: an optional value
/// would take it as `.some(.null)`; write `.null`.)
extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral, ExpressibleByFloatLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(elements) }
}
