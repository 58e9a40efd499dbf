import Foundation
public import BallotDomain
public import BallotLedger
public import BallotFormat
public import BallotAudit
import BallotStore

/// Elections, actors and ledgers that tests share.
public enum Fixtures {
    public static let admin = Actor(role: .admin, uid: 1000)
    public static let importer = Actor(role: .importer, uid: 1001)
    public static let juror = Actor(role: .juror, uid: 1002)

    /// The repository's root, found from this file's path.
    public static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// A data file from `config/elections/`.
    public static func electionFile(_ name: String) -> String { "\(repositoryRoot)/config/elections/\(name).json" }

    public static func slug(_ s: String) -> Slug { Slug(unchecked: s) }
    public static func time(_ s: String) -> Timestamp { Timestamp(rfc3339: s)! }

    public static let electionID = slug("award-2022")
    public static let criteria = ["results", "settlement", "development", "differentiation"]
    public static let nominees = ["bodo", "haugesund", "kinn", "raelingen", "vennesla"]
    public static let jurors = ["jury-a", "jury-b", "jury-c"]

    /// A 2022-like election: window 1–11 November 2022 UTC, four equally weighted criteria.
    public static func definition(_ id: ElectionID = electionID, publicStandings: Bool = false) -> ElectionDefinition {
        ElectionDefinition(
            id: id, title: "Test award \(id)",
            opensAt: time("2022-11-01T00:00:00Z"), closesAt: time("2022-11-11T00:00:00Z"),
            criteria: criteria.map { Criterion(id: slug($0), title: $0.capitalized, weight: 0.25) },
            publicStandings: publicStandings)
    }

    public static func nomination(_ id: String, direct: Double = 60, afterOneYear: Double = 55) -> Nomination {
        Nomination(id: slug(id), name: id.capitalized, goalAttainmentDirect: direct, goalAttainmentAfterOneYear: afterOneYear)
    }

    /// The commands that define the election, nominate every nominee and register the jurors.
    public static func setUpCommands(_ id: ElectionID = electionID) -> [Command] {
        [.defineElection(definition(id))]
            + nominees.map { .addNominee(election: id, nomination: nomination($0)) }
            + jurors.map { .addJuror(election: id, juror: slug($0), name: $0) }
    }

    public static let hasher = try! VoterHasher(secret: Array("test secret, 32 bytes of it ....".utf8))

    public static func voter(_ n: Int) -> VoterKey { hasher.key(for: "voter-\(n)@example.no") }

    /// Options for a ledger in a temp directory: a small map, and no fsync unless asked; every
    /// open checks every event (so that a tampering test's reopen meets its damage) unless a test
    /// of the kept state asks for the daemon's default, `.tail`.
    public static func options(mapSize: Int = 16 << 20, maxMapSize: Int = 1 << 34, durable: Bool = false,
                               check: OpenCheck = .full) -> Ledger.Options {
        Ledger.Options(environment: EnvironmentOptions(mapSize: mapSize, maxMapSize: maxMapSize, durable: durable), check: check)
    }

    /// The fixture ledgers' clock: inside the voting window, after every generated vote's cast_at.
    public static let now = "2022-11-10T12:00:00Z"

    /// A ledger with the fixture election set up, its clock at `now`.
    public static func ledgerWithElection(in dir: TemporaryDirectory, clock: ManualClock = ManualClock(now),
                                          options: Ledger.Options = options()) throws -> Ledger {
        let ledger = try Ledger(path: dir.sub("ledger"), options: options, clock: clock)
        let outcomes = try ledger.submit(setUpCommands().map { Submission($0, by: admin) })
        precondition(outcomes.allSatisfy { $0.receipt != nil }, "fixture set-up refused: \(outcomes)")
        return ledger
    }

    /// Deterministic votes: voter i votes for a nominee chosen by a simple generator, cast at
    /// a time spread over the first nine days of the window (before the fixture clock's `now`).
    public static func votes(_ range: Range<Int>, election: ElectionID = electionID, seed: UInt64 = 42) -> [Command] {
        let window = definition(election)
        let span = UInt64(9 * 86_400 * 1_000_000)
        return range.map { i in
            var x = UInt64(i) &* 0x9E37_79B9_7F4A_7C15 &+ seed
            x ^= x >> 31
            x = x &* 0xBF58_476D_1CE4_E5B9
            x ^= x >> 29
            // Skew the choice so that the tally is not flat: weights 5:4:3:2:1.
            let bucket = Int(x % 15)
            let nominee = bucket < 5 ? 0 : bucket < 9 ? 1 : bucket < 12 ? 2 : bucket < 14 ? 3 : 4
            let castAt = Timestamp(microseconds: window.opensAt.microseconds + Int64((x >> 8) % span))
            return .castVote(election: election, nominee: slug(nominees[nominee]), voter: voter(i), castAt: castAt, channel: "web")
        }
    }
}
