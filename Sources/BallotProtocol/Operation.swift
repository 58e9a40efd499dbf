public import BallotDomain
public import BallotConfig

/// What a request asks for, with its parameters checked and typed. docs/protocol.md lists
/// every op with an example.
public enum Operation: Sendable {
    case hello
    case status
    case electionDefine(ElectionSpec)
    case electionGet(ElectionID)
    case electionOpen(ElectionID)
    case electionClose(ElectionID)
    case nomineeAdd(ElectionID, Nomination)
    /// `voter` is the raw identifier; the daemon hashes it and drops it.
    case voteCast(election: ElectionID, nominee: NomineeID, voter: String, castAt: Timestamp?, channel: String)
    case voteInvalidate(election: ElectionID, vote: UInt64, reason: String)
    case jurorAdd(election: ElectionID, juror: JurorID, name: String)
    /// `juror` may be omitted by a juror, who scores as the juror their uid is mapped to.
    case juryScore(election: ElectionID, juror: JurorID?, nominee: NomineeID, criterion: CriterionID, score: Int32)
    case juryClose(ElectionID)
    case resultCertify(ElectionID)
    case tally(ElectionID)
    case ranking(ElectionID)
    case events(from: UInt64, limit: Int)

    /// Every op name the daemon knows, for `hello` and for `unknown_op` messages.
    public static let names = [
        "hello", "status", "election.define", "election.get", "election.open", "election.close",
        "nominee.add", "vote.cast", "vote.invalidate", "juror.add", "jury.score", "jury.close",
        "result.certify", "tally", "ranking", "events",
    ]

    /// Whether the op appends to the ledger (and so goes to the writer).
    public var isWrite: Bool {
        switch self {
        case .hello, .status, .electionGet, .tally, .ranking, .events: false
        default: true
        }
    }

    public init(_ request: Request) throws(ProtocolError) {
        let f = Fields(request)
        switch request.op {
        case "hello": self = .hello
        case "status": self = .status
        case "election.define":
            let spec = try f.object("election")
            do {
                self = .electionDefine(try ElectionSpec.decode(spec.serialized(), source: "election.define: field 'election'"))
            } catch let error as ConfigError {
                throw ProtocolError(.badRequest, error.description)
            } catch {
                throw ProtocolError(.badRequest, "election.define: \(error)")
            }
        case "election.get": self = .electionGet(try f.slug("election"))
        case "election.open": self = .electionOpen(try f.slug("election"))
        case "election.close": self = .electionClose(try f.slug("election"))
        case "nominee.add":
            self = .nomineeAdd(try f.slug("election"), Nomination(
                id: try f.slug("nominee"), name: try f.string("name"),
                goalAttainmentDirect: try f.number("goal_attainment_direct"),
                goalAttainmentAfterOneYear: try f.number("goal_attainment_after_one_year")))
        case "vote.cast":
            self = .voteCast(election: try f.slug("election"), nominee: try f.slug("nominee"), voter: try f.string("voter"),
                             castAt: try f.time("cast_at"), channel: try f.optionalString("channel") ?? "")
        case "vote.invalidate":
            self = .voteInvalidate(election: try f.slug("election"), vote: try f.sequence("vote"), reason: try f.string("reason"))
        case "juror.add":
            self = .jurorAdd(election: try f.slug("election"), juror: try f.slug("juror"), name: try f.string("name"))
        case "jury.score":
            let score = try f.int("score")
            guard let score32 = Int32(exactly: score) else { throw f.bad("field 'score' (\(score)) is out of range") }
            self = .juryScore(election: try f.slug("election"), juror: f.has("juror") ? try f.slug("juror") : nil,
                              nominee: try f.slug("nominee"), criterion: try f.slug("criterion"), score: score32)
        case "jury.close": self = .juryClose(try f.slug("election"))
        case "result.certify": self = .resultCertify(try f.slug("election"))
        case "tally": self = .tally(try f.slug("election"))
        case "ranking": self = .ranking(try f.slug("election"))
        case "events":
            let from = try f.optionalInt("from") ?? 1
            let limit = try f.optionalInt("limit") ?? 1000
            guard from >= 1, (1...10_000).contains(limit) else { throw f.bad("'from' must be 1 or more and 'limit' from 1 to 10000") }
            self = .events(from: UInt64(from), limit: Int(limit))
        default:
            throw ProtocolError(.unknownOp, "unknown op '\(request.op)'; known ops: \(Operation.names.joined(separator: ", "))")
        }
    }
}
