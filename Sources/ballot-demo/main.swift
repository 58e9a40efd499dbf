// The main job at this stage: the 2022 award run end to end through the ledger library, on a
// fresh ledger in ./demo-data. (Once ballotd exists, scripts/demo drives the daemon instead.)
import BallotDomain
import BallotLedger
import BallotConfig
import Foundation
import Synchronization

/// The demo replays a historic election, so it sets the ledger's clock itself.
final class ScenarioClock: LedgerClock {
    private let current = Mutex(Timestamp(microseconds: 0))
    func now() -> Timestamp { current.withLock { $0 } }
    func set(_ rfc3339: String) { current.withLock { $0 = Timestamp(rfc3339: rfc3339)! } }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("ballot-demo: \(message)\n".utf8))
    exit(1)
}

let root = CommandLine.arguments.dropFirst().first ?? "."
let dataDir = "\(root)/demo-data"
try? FileManager.default.removeItem(atPath: dataDir)
try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)

// The operator's voter secret: 32 random bytes, kept beside (never inside) the ledger.
var secret = [UInt8](repeating: 0, count: 32)
for i in secret.indices { secret[i] = UInt8.random(in: 0...255) }
try Data(secret).write(to: URL(fileURLWithPath: "\(dataDir)/voter-secret"))
let hasher = try VoterHasher(secret: secret)

let clock = ScenarioClock()
clock.set("2022-10-20T09:00:00Z")
let ledger = try Ledger(path: "\(dataDir)/ledger", clock: clock)
let admin = Actor(role: .admin, uid: getuid())
let importer = Actor(role: .importer, uid: getuid())

@MainActor @discardableResult
func submit(_ commands: [Command], by actor: Actor, keys: [String]? = nil) throws -> [Outcome] {
    let batch = commands.enumerated().map { i, c in Submission(c, by: actor, idempotencyKey: keys?[i] ?? "") }
    return try ledger.submit(batch)
}

func expectAccepted(_ outcomes: [Outcome], _ what: String) {
    for case .refused(let e) in outcomes { fail("\(what) was refused: \(e)") }
}

// 1. Define the 2022 election from its data file, with its nominees.
let spec = try ElectionSpec.load(path: "\(root)/config/elections/imdi-2022.json")
let election = try spec.definition()
let id = election.id
expectAccepted(try submit(try spec.commands(), by: admin), "setting up \(id)")
print("Defined \(id): \(election.title)")
print("  window \(election.opensAt) – \(election.closesAt), nominees: \(ledger.state[id]!.nominees.map(\.name).joined(separator: ", "))")

// An ineligible nomination is refused.
let refusedNomination = try submit([.addNominee(election: id, nomination: Nomination(
    id: Slug(unchecked: "example"), name: "Eksempel", goalAttainmentDirect: 47, goalAttainmentAfterOneYear: 61))], by: admin)
if case .refused(let e) = refusedNomination[0] { print("  refused as expected: \(e.code.rawValue): \(e.message)") }

// 2. Jurors.
let jurors = ["jury-leader", "jury-research", "jury-municipal"].map { Slug(unchecked: $0) }
expectAccepted(try submit(jurors.map { .addJuror(election: id, juror: $0, name: $0.value) }, by: admin), "registering jurors")

// 3. Live votes during the window, stamped with the ledger's clock.
clock.set("2022-11-03T10:00:00Z")
let nominees = ledger.state[id]!.nominees.map(\.id)
expectAccepted(try submit((0..<3).map { i in
    .castVote(election: id, nominee: nominees[i], voter: hasher.key(for: "live-\(i)@example.no"), castAt: nil, channel: "web")
}, by: importer), "live votes")

// 4. A batch import (web-form and SMS exports) of 20,000 votes with cast_at in the window,
//    keyed by vote_id. Bodø is popular with the public; the jury will favour Kinn.
var rng = SystemRandomNumberGenerator()
let weights = [34, 16, 24, 15, 11]   // Bodø, Haugesund, Kinn, Rælingen, Vennesla
let span = election.closesAt.microseconds - election.opensAt.microseconds
clock.set("2022-11-11T06:00:00Z")   // the last files arrive after the window has closed
var imported = 0
for batch in 0..<4 {
    var commands: [Command] = []
    var keys: [String] = []
    for j in 0..<5000 {
        let n = batch * 5000 + j
        var pick = Int.random(in: 0..<100, using: &rng)
        var nominee = 0
        while pick >= weights[nominee] { pick -= weights[nominee]; nominee += 1 }
        let castAt = Timestamp(microseconds: election.opensAt.microseconds + Int64.random(in: 0..<span, using: &rng))
        commands.append(.castVote(election: id, nominee: nominees[nominee], voter: hasher.key(for: "voter-\(n)@example.no"),
                                  castAt: castAt, channel: n % 3 == 0 ? "sms" : "web"))
        keys.append("export-\(batch)-\(j)")
    }
    let outcomes = try submit(commands, by: importer, keys: keys)
    expectAccepted(outcomes, "import batch \(batch)")
    imported += outcomes.count
    if batch == 1 {
        // The same file sent twice appends nothing.
        let again = try submit(commands, by: importer, keys: keys)
        let repeated = again.filter { if case .repeated = $0 { true } else { false } }.count
        print("Re-imported batch 1: \(repeated) of \(again.count) rows already present, \(ledger.state[id]!.votesCast) votes stored")
    }
}
print("Imported \(imported) votes in 4 batches")

// 5. Bad votes are refused with a reason; nothing is written for them.
let bad = try submit([
    .castVote(election: id, nominee: nominees[0], voter: hasher.key(for: "voter-7@example.no"), castAt: Timestamp(rfc3339: "2022-11-04T12:00:00Z"), channel: "web"),
    .castVote(election: id, nominee: nominees[0], voter: hasher.key(for: "late@example.no"), castAt: Timestamp(rfc3339: "2022-10-20T08:00:00Z"), channel: "web"),
    .castVote(election: id, nominee: Slug(unchecked: "oslo"), voter: hasher.key(for: "new@example.no"), castAt: nil, channel: "web"),
], by: importer)
for case .refused(let e) in bad { print("  refused as expected: \(e.code.rawValue): \(e.message)") }

// 6. One vote found to be fraudulent is invalidated, with a reason.
guard case .appended(let first)? = try ledger.submit(Submission(.castVote(election: id, nominee: nominees[0],
    voter: hasher.key(for: "bot-1@example.no"), castAt: Timestamp(rfc3339: "2022-11-05T03:00:00Z"), channel: "web"), by: importer)) as Outcome?
else { fail("the bot vote was not stored") }
expectAccepted(try submit([.invalidateVote(election: id, vote: first.seq, reason: "scripted vote from a bot network")], by: admin), "invalidation")

// 7. The jury scores every nominee on every criterion; one score is amended.
let base: [Int32] = [6, 7, 9, 8, 6]   // per nominee, Kinn strongest
var scores: [Command] = []
for (j, juror) in jurors.enumerated() {
    for (n, nominee) in nominees.enumerated() {
        for (c, criterion) in election.criteria.enumerated() {
            scores.append(.scoreJury(election: id, juror: juror, nominee: nominee, criterion: criterion.id,
                                     score: min(10, base[n] + Int32((j + c) % 3) - 1)))
        }
    }
}
scores.append(.scoreJury(election: id, juror: jurors[0], nominee: nominees[2], criterion: election.criteria[2].id, score: 10))
expectAccepted(try submit(scores, by: Actor(role: .juror, uid: getuid())), "jury scores")

// 8. Close the vote and the jury, certify on the day of the conference.
clock.set("2022-11-11T08:00:00Z")
expectAccepted(try submit([.closeVoting(election: id), .closeJury(election: id)], by: admin), "closing")
clock.set("2022-11-17T10:00:00Z")
expectAccepted(try submit([.certifyResult(election: id)], by: admin), "certification")

// 9. The numbers.
let state = ledger.state[id]!
let tally = Tally(state)
print("\nTally of \(id): \(tally.votesCast) votes cast, \(tally.validVotes) valid, \(tally.invalidated) invalidated")
for e in tally.entries {
    print("  \(e.rank). \(e.name.padding(toLength: 10, withPad: " ", startingAt: 0)) \(String(e.votes).leftPad(6))  \(String(format: "%5.1f %%", e.share * 100))")
}
let ranking = Ranking(state)
print("\nCombined ranking (\(ranking.formula.text)):")
print("       nominee      votes  share   jury(1-10)  jury(0-1)  combined")
for e in ranking.entries {
    print("  \(e.rank). \(e.name.padding(toLength: 10, withPad: " ", startingAt: 0)) \(String(e.votes).leftPad(6)) \(String(format: "%6.3f", e.voteShare))  \(String(format: "%8.3f", e.juryWeighted ?? 0))  \(String(format: "%9.3f", e.juryNormalized))  \(String(format: "%8.4f", e.combined))")
}
print("\nCertified winner: \(state.certified.map { w in state.nominees.first { $0.id == w.winner }!.name } ?? "none")")
print("Ledger: \(ledger.size) events, Merkle root \(ledger.root)")

// 10. Projections follow from the events alone: reopen (replaying every event through the
//     rules) and rebuild them; the bytes must not change.
let before = try ledger.reader.storedProjections()
let rootBefore = ledger.root
ledger.close()
let reopened = try Ledger(path: "\(dataDir)/ledger", clock: clock)
try reopened.rebuildProjections()
guard try reopened.reader.storedProjections() == before, reopened.root == rootBefore else {
    fail("the projections rebuilt from the events differ from the stored ones")
}
print("Reopened and rebuilt from event 1: projections byte-identical, root unchanged.")
print("Ledger left in \(dataDir)/ledger")

extension String {
    func leftPad(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
