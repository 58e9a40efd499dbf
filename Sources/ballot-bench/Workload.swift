import BallotClient
import BallotDomain
import BallotLedger
import BallotFormat
import BallotAudit
import Foundation

/// The votes to append, as an importer hands them over (raw voter id, nominee, cast_at,
/// vote_id), each generated from its index when it is needed, so that every run appends the
/// same ledger and 100 million of them take no memory (held up front they took 12 GB, which
/// starved the ledger's page cache).
struct Workload: Sendable {
    struct Row: Sendable {
        let voter: String
        let nominee: Int
        let castAt: Timestamp
        let voteID: String
    }

    static let election = Slug(unchecked: "bench")
    static let nominees = ["bodo", "haugesund", "kinn", "raelingen", "vennesla"].map { Slug(unchecked: $0) }
    static let opens = Timestamp(rfc3339: "2022-11-01T00:00:00Z")!
    static let definition = ElectionDefinition(
        id: election, title: "Benchmark election", opensAt: opens, closesAt: Timestamp(rfc3339: "2022-11-11T00:00:00Z")!,
        criteria: ["results", "settlement", "development", "differentiation"].map { Criterion(id: Slug(unchecked: $0), title: $0, weight: 0.25) })

    /// The number of votes.
    let count: Int
    let keys: Bool
    let hasher: VoterHasher
    /// Voter keys computed up front (`--phases`), or empty.
    var prehashed: [VoterKey] = []
    let importer = Actor(role: .importer, uid: 1000)

    init(votes: Int, keys: Bool) throws {
        count = votes
        self.keys = keys
        hasher = try VoterHasher(secret: Array("benchmark secret of 32 bytes....".utf8))
    }

    /// Vote `i`: cheap and deterministic, so the input costs little.
    func row(_ i: Int) -> Row {
        var rng = SplitMix64(seed: 42 &+ UInt64(i) &* 0x9E37_79B9_7F4A_7C15)
        let window = Workload.definition.closesAt.microseconds - Workload.opens.microseconds
        return Row(voter: "voter-\(i)@example.no", nominee: Int.random(in: 0..<5, using: &rng),
                   castAt: Timestamp(microseconds: Workload.opens.microseconds + Int64.random(in: 0..<window, using: &rng)),
                   voteID: "v\(i)")
    }

    /// The set-up: the election and its five nominees.
    var setUp: [Submission] {
        ([Command.defineElection(Workload.definition)] + Workload.nominees.map {
            .addNominee(election: Workload.election, nomination: Nomination(id: $0, name: $0.value, goalAttainmentDirect: 60, goalAttainmentAfterOneYear: 60))
        }).map { Submission($0, by: .system) }
    }

    /// The submissions of rows `range`, their voter ids hashed now unless hashed up front.
    func submissions(_ range: Range<Int>) -> [Submission] {
        range.map { i in
            let row = row(i)
            return Submission(.castVote(election: Workload.election, nominee: Workload.nominees[row.nominee],
                                        voter: prehashed.isEmpty ? hasher.key(for: row.voter) : prehashed[i],
                                        castAt: row.castAt, channel: "web"),
                              by: importer, idempotencyKey: keys ? row.voteID : "")
        }
    }
}

/// Hands batches from the hashing thread to the appending one, at most two waiting.
final class BatchQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private var waiting: [[Submission]] = []

    func put(_ batch: [Submission]) {
        condition.lock()
        while waiting.count >= 2 { condition.wait() }
        waiting.append(batch)
        condition.broadcast()
        condition.unlock()
    }

    func take() -> [Submission] {
        condition.lock()
        while waiting.isEmpty { condition.wait() }
        let batch = waiting.removeFirst()
        condition.broadcast()
        condition.unlock()
        return batch
    }
}
