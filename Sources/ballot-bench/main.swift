// Ledger append benchmark: N votes through the store and the domain (HMAC of the voter id,
// duplicate check, rules, record encoding, leaf hash, Merkle nodes, projections), in batches of
// B per durable transaction, into a fresh ledger. Prints one JSON line with the figures.
//
//   ballot-bench append --dir DIR [--votes N] [--batch B] [--keys] [--no-sync]
import BallotDomain
import BallotLedger
import BallotStore
import Foundation

struct Arguments {
    var dir = ""
    var votes = 1_000_000
    var batch = 10_000
    var keys = false
    var durable = true
    /// Time the HMAC of the voter ids on its own, before the appends.
    var phases = false

    init(_ args: [String]) {
        var it = args.makeIterator()
        while let a = it.next() {
            switch a {
            case "--dir": dir = it.next() ?? ""
            case "--votes": votes = Int(it.next() ?? "") ?? votes
            case "--batch": batch = Int(it.next() ?? "") ?? batch
            case "--keys": keys = true
            case "--no-sync": durable = false
            case "--phases": phases = true
            default:
                FileHandle.standardError.write(Data("ballot-bench: unknown argument \(a)\n".utf8))
                exit(64)
            }
        }
        if dir.isEmpty {
            FileHandle.standardError.write(Data("usage: ballot-bench append --dir DIR [--votes N] [--batch B] [--keys] [--no-sync]\n".utf8))
            exit(64)
        }
    }
}

struct FixedClock: LedgerClock {
    let at: Timestamp
    func now() -> Timestamp { at }
}

func seconds(_ start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

let args = CommandLine.arguments.dropFirst()
guard args.first == "append" else {
    FileHandle.standardError.write(Data("usage: ballot-bench append --dir DIR [--votes N] [--batch B] [--keys] [--no-sync]\n".utf8))
    exit(64)
}
let options = Arguments(Array(args.dropFirst()))
try? FileManager.default.removeItem(atPath: options.dir)

let id = Slug(unchecked: "bench")
let nominees = ["bodo", "haugesund", "kinn", "raelingen", "vennesla"].map { Slug(unchecked: $0) }
let opens = Timestamp(rfc3339: "2022-11-01T00:00:00Z")!
let definition = ElectionDefinition(
    id: id, title: "Benchmark election", opensAt: opens, closesAt: Timestamp(rfc3339: "2022-11-11T00:00:00Z")!,
    criteria: ["results", "settlement", "development", "differentiation"].map { Criterion(id: Slug(unchecked: $0), title: $0, weight: 0.25) })
let ledger = try Ledger(path: options.dir, options: Ledger.Options(environment: EnvironmentOptions(durable: options.durable)),
                        clock: FixedClock(at: Timestamp(rfc3339: "2022-11-02T00:00:00Z")!))
let setup = [Command.defineElection(definition)]
    + nominees.map { .addNominee(election: id, nomination: Nomination(id: $0, name: $0.value, goalAttainmentDirect: 60, goalAttainmentAfterOneYear: 60)) }
_ = try ledger.submit(setup.map { Submission($0, by: .system) })

// Input rows as an importer hands them over: raw voter id, nominee, cast_at, vote_id.
struct Row {
    let voter: String
    let nominee: Int
    let castAt: Timestamp
    let voteID: String
}
/// splitmix64: cheap and deterministic, so that generating the input costs little.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
var rng = SplitMix(state: 42)
let rows = (0..<options.votes).map { i in
    Row(voter: "voter-\(i)@example.no", nominee: Int.random(in: 0..<5, using: &rng),
        castAt: Timestamp(microseconds: opens.microseconds + Int64.random(in: 0..<(864_000 * 1_000_000), using: &rng)),
        voteID: "v\(i)")
}
let hasher = try VoterHasher(secret: Array("benchmark secret of 32 bytes....".utf8))
let importer = Actor(role: .importer, uid: 1000)

var prehashed: [VoterKey] = []
if options.phases {
    let t = ContinuousClock.now
    prehashed = rows.map { hasher.key(for: $0.voter) }
    FileHandle.standardError.write(Data("hmac only: \(seconds(t)) s for \(rows.count) voter ids\n".utf8))
}

let start = ContinuousClock.now
var appended = 0
for first in stride(from: 0, to: rows.count, by: options.batch) {
    let batch = (first..<min(first + options.batch, rows.count)).map { i in
        let row = rows[i]
        return Submission(.castVote(election: id, nominee: nominees[row.nominee],
                                    voter: options.phases ? prehashed[i] : hasher.key(for: row.voter),
                             castAt: row.castAt, channel: "web"),
                   by: importer, idempotencyKey: options.keys ? row.voteID : "")
    }
    for outcome in try ledger.submit(batch) {
        guard case .appended = outcome else { fatalError("benchmark vote refused: \(outcome)") }
        appended += 1
    }
}
let elapsed = seconds(start)
let bytes = try ledger.storageInfo().usedBytes
let recordBytes = try ledger.reader.rawRecord(ledger.size)?.count ?? 0
print("{\"impl\":\"ballotledger\",\"votes\":\(appended),\"batch\":\(options.batch),\"keys\":\(options.keys),\"durable\":\(options.durable),\"seconds\":\(elapsed),\"votes_per_second\":\(Double(appended) / elapsed),\"record_bytes\":\(recordBytes),\"used_bytes\":\(bytes),\"root\":\"\(ledger.root)\"}")
ledger.close()
