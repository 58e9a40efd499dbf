// The cost of jurors' signatures (issue 22): 10,000 jury scores (10 jurors × 100 nominees × 10
// criteria) appended to a fresh ledger in batches, once signed (an election that requires it:
// each score's Ed25519 signature verified before it becomes an event) and once unsigned, then a
// checkpoint, so that `ballot-replay verify` can be timed on both ledgers. Signing is the
// jurors' work and happens before the clock starts. Prints one JSON line per ledger;
// scripts/bench-jury alternates runs and reports medians.
import BallotDomain
import BallotLedger
import BallotFormat
import BallotStore
import Foundation

enum JuryBench {
    static let usage = "usage: ballot-bench jury --dir DIR [--batch B] [--signed-first]"

    static func run(_ args: [String]) throws {
        var dir = "", batch = 100, signedFirst = false
        var it = args.makeIterator()
        while let a = it.next() {
            switch a {
            case "--dir": dir = it.next() ?? ""
            case "--batch": batch = Int(it.next() ?? "") ?? batch
            case "--signed-first": signedFirst = true
            default: throw Arguments.UsageError()
            }
        }
        guard !dir.isEmpty, batch > 0 else { throw Arguments.UsageError() }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for signed in signedFirst ? [true, false] : [false, true] {
            let path = dir + (signed ? "/signed" : "/unsigned")
            try? FileManager.default.removeItem(atPath: path)
            print(try append(to: path, signed: signed, batch: batch))
        }
    }

    static func append(to path: String, signed: Bool, batch: Int) throws -> String {
        let id = Slug(unchecked: "jury-bench")
        let jurors = (0..<10).map { Slug(unchecked: "juror-\($0)") }
        let nominees = (0..<100).map { Slug(unchecked: "nominee-\($0)") }
        let criteria = (0..<10).map { Criterion(id: Slug(unchecked: "criterion-\($0)"), title: "Criterion \($0)", weight: 1) }
        let keys = try jurors.map { try SignerKey(name: $0.value) }
        var definition = ElectionDefinition(id: id, title: "Jury benchmark", opensAt: Workload.definition.opensAt,
                                            closesAt: Workload.definition.closesAt, criteria: criteria)
        if signed { definition.jurySignatures = JurySignaturePolicy(required: true, quorum: 0) }
        let admin = Actor(role: .admin, uid: 1000)
        let ledger = try Ledger(path: path, options: Ledger.Options(environment: EnvironmentOptions(durable: false)),
                                clock: FixedClock(at: Workload.definition.opensAt), checkpointKey: CheckpointKey())
        let setUp = [Submission(.defineElection(definition), by: admin)]
            + nominees.map { Submission(.addNominee(election: id, nomination: Nomination(id: $0, name: $0.value, goalAttainmentDirect: 60, goalAttainmentAfterOneYear: 60)), by: admin) }
            + zip(jurors, keys).map { j, k in Submission(.addJuror(election: id, juror: j, name: j.value, key: signed ? k.verifierKey.jurorKey : nil), by: admin) }
        _ = try ledger.submit(setUp)
        var scores: [Submission] = []
        var checks: [(signature: [UInt8], statement: [UInt8], key: Digest32)] = []
        for (j, juror) in jurors.enumerated() {
            for (n, nominee) in nominees.enumerated() {
                for (c, criterion) in criteria.enumerated() {
                    let score = Int32(1 + (j + n + c) % 10)
                    var signature: SignedScore?
                    if signed {
                        let statement = JuryStatement.score(JuryScore(election: id, juror: juror, nominee: nominee, criterion: criterion.id, score: score),
                                                            ledger: ledger.ledgerID)
                        let line = keys[j].sign(statement)
                        checks.append((line.bytes, Array(statement.utf8), keys[j].key.publicKey))
                        signature = SignedScore(supersedes: nil, signature: SentSignature(keyID: line.keyID, bytes: line.bytes))
                    }
                    scores.append(Submission(.scoreJury(election: id, juror: juror, nominee: nominee, criterion: criterion.id, score: score,
                                                        signed: signature), by: admin))
                }
            }
        }
        let start = ContinuousClock.now
        for from in stride(from: 0, to: scores.count, by: batch) {
            for outcome in try ledger.submit(Array(scores[from..<min(from + batch, scores.count)])) {
                guard case .appended = outcome else { fatalError("benchmark score refused: \(outcome)") }
            }
        }
        let elapsed = Bench.seconds(since: start)
        // The baseline: the same signatures verified in a bare loop, Ed25519 alone.
        let bare = ContinuousClock.now
        for c in checks where !SignedNote.ed25519Verifies(c.signature, over: c.statement, publicKey: c.key) { fatalError("a benchmark signature does not verify") }
        let bareSeconds = Bench.seconds(since: bare)
        _ = try ledger.submit(Submission(.takeCheckpoint(.request), by: admin))
        let events = ledger.size
        ledger.close()
        return "{\"impl\":\"jury-scores\",\"signed\":\(signed),\"scores\":\(scores.count),\"batch\":\(batch),\"seconds\":\(elapsed),\"scores_per_second\":\(Double(scores.count) / elapsed),\"bare_verify_seconds\":\(bareSeconds),\"events\":\(events)}"
    }
}
