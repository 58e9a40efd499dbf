import Testing
import Foundation
import TestSupport
import BallotLedger
import BallotDomain
@testable import BallotFormat
@testable import BallotWitness

/// The witness's decisions (c2sp.org/tlog-witness), against checkpoints and consistency proofs
/// of real ledgers: it cosigns a checkpoint that extends the last one it cosigned for that
/// origin, and refuses, with the spec's status and a message saying why, anything else: a
/// rollback to an older copy, a fork, an unknown log, another key, a malformed request.
@Suite struct WitnessTests {
    let logKey = try! CheckpointKey(seed: Array(repeating: 7, count: 32))
    let witnessKey = try! CheckpointKey(seed: Array(repeating: 9, count: 32))
    static let origin = "example.org/witness-test"

    func ledger(_ dir: TemporaryDirectory, votes: Range<Int>) throws -> Ledger {
        var options = Fixtures.options()
        options.checkpointOrigin = Self.origin
        let ledger = try Ledger(path: dir.sub("ledger"), options: options, clock: ManualClock(Fixtures.now), checkpointKey: logKey)
        _ = try ledger.submit(Fixtures.setUpCommands().map { Submission($0, by: Fixtures.admin) })
        try add(votes, to: ledger)
        return ledger
    }

    func add(_ votes: Range<Int>, to ledger: Ledger) throws {
        _ = try ledger.submit(Fixtures.votes(votes).map { Submission($0, by: Fixtures.importer) })
    }

    /// A checkpoint of the ledger as it stands, as the note the daemon hands out.
    func note(_ ledger: Ledger) throws -> SignedNote {
        let receipt = try #require(try ledger.submit(Submission(.takeCheckpoint(.request), by: Fixtures.admin)).receipt)
        guard case .checkpointSigned(let c)? = try ledger.reader.record(receipt.seq)?.event, let note = c.note else {
            throw WitnessError("no note at \(receipt.seq)")
        }
        return note
    }

    /// An add-checkpoint body: "old N", the proof, an empty line, the note.
    func body(old: UInt64, proof: [MerkleHash] = [], _ note: SignedNote) -> [UInt8] {
        Array(("old \(old)\n" + proof.map { $0.withBytes { Data($0).base64EncodedString() } + "\n" }.joined() + "\n" + note.serialized).utf8)
    }

    func witness(_ state: WitnessState = WitnessState()) throws -> Witness {
        try Witness(name: "witness.example/w1", key: witnessKey, logs: [WitnessedLog(origin: Self.origin, publicKey: logKey.publicKey)], state: state)
    }

    @Test func itCosignsACheckpointThatExtendsTheLastAndRefusesARollback() throws {
        let dir = TemporaryDirectory()
        let ledger = try ledger(dir, votes: 0..<20)
        var w = try witness()
        let first = try note(ledger)
        let a = try CheckpointNote(text: first.text)
        let reply = w.addCheckpoint(body(old: 0, first), now: 1_700_000_000)
        #expect(reply.status == 200, "\(reply)")
        // The reply is a cosignature line; added to the note, it verifies under the witness's key.
        var cosigned = first
        cosigned.signatures += try SignedNote(parsing: Array((first.text + "\n" + reply.body).utf8)).signatures
        #expect(cosigned.cosignature(name: "witness.example/w1", publicKey: witnessKey.publicKey) == .success(1_700_000_000))
        #expect(cosigned.cosignature(name: "witness.example/w1", publicKey: logKey.publicKey) == nil)
        #expect(w.state.latest[Self.origin] == WitnessState.Head(size: a.size, root: a.root))

        try add(20..<40, to: ledger)
        let second = try note(ledger)
        let b = try CheckpointNote(text: second.text)
        // Without a proof from what it cosigned, or from another size, it does not cosign.
        #expect(w.addCheckpoint(body(old: 0, second), now: 1_700_000_100) == WitnessReply(status: 409, contentType: "text/x.tlog.size", body: "\(a.size)\n"))
        let badProof = try ledger.reader.consistencyProof(oldSize: a.size - 1, newSize: b.size)
        #expect(w.addCheckpoint(body(old: a.size, proof: badProof, second), now: 1_700_000_100).status == 422)
        let proof = try ledger.reader.consistencyProof(oldSize: a.size, newSize: b.size)
        #expect(w.addCheckpoint(body(old: a.size, proof: proof, second), now: 1_700_000_100).status == 200)
        #expect(w.state.latest[Self.origin]?.size == b.size)

        // The older checkpoint again (the ledger put back from a backup): refused.
        let rollback = w.addCheckpoint(body(old: b.size, first), now: 1_700_000_200)
        #expect(rollback.status == 400 && rollback.body.contains("past the checkpoint's size"), "\(rollback)")
        #expect(w.addCheckpoint(body(old: a.size, first), now: 1_700_000_200).status == 409)
        #expect(w.state.latest[Self.origin]?.size == b.size)

        // The state survives a restart of the witness as its file.
        let reread = try WitnessState(parsing: w.state.serialized)
        #expect(reread == w.state)
        var restarted = try witness(reread)
        #expect(restarted.addCheckpoint(body(old: a.size, proof: proof, second), now: 1).status == 409)
    }

    /// A log that shows two views: two copies with the same first events and key, each taking
    /// other votes after them. The witness cosigns one view, and refuses the other.
    @Test func aForkIsRefused() throws {
        let one = try ledger(TemporaryDirectory(), votes: 0..<20)
        let other = try ledger(TemporaryDirectory(), votes: 0..<20)
        var w = try witness()
        let start = try note(one)
        #expect(try note(other) == start, "the same events make the same checkpoint")
        #expect(w.addCheckpoint(body(old: 0, start), now: 1).status == 200)
        let a = try CheckpointNote(text: start.text).size
        try add(20..<30, to: one)
        try add(100..<110, to: other)
        let (b1, b2) = (try note(one), try note(other))
        let size = try CheckpointNote(text: b1.text).size
        #expect(try CheckpointNote(text: b2.text).size == size)
        #expect(w.addCheckpoint(body(old: a, proof: try one.reader.consistencyProof(oldSize: a, newSize: size), b1), now: 2).status == 200)
        let reply = w.addCheckpoint(body(old: size, b2), now: 3)
        #expect(reply.status == 409 && reply.body.contains("two views"), "\(reply)")
        let late = w.addCheckpoint(body(old: a, proof: try other.reader.consistencyProof(oldSize: a, newSize: size), b2), now: 3)
        #expect(late == WitnessReply(status: 409, contentType: "text/x.tlog.size", body: "\(size)\n"))
        #expect(w.state.latest[Self.origin]?.root == (try CheckpointNote(text: b1.text).root))
    }

    @Test func whatItDoesNotKnowOrCannotReadIsRefusedWithWhy() throws {
        let ledger = try ledger(TemporaryDirectory(), votes: 0..<5)
        let n = try note(ledger)
        var w = try witness()
        var unknown = try Witness(name: "witness.example/w1", key: witnessKey,
                                  logs: [WitnessedLog(origin: "example.org/another", publicKey: logKey.publicKey)], state: WitnessState())
        #expect(unknown.addCheckpoint(body(old: 0, n), now: 1).status == 404)
        var otherKey = try Witness(name: "witness.example/w1", key: witnessKey,
                                   logs: [WitnessedLog(origin: Self.origin, publicKey: witnessKey.publicKey)], state: WitnessState())
        #expect(otherKey.addCheckpoint(body(old: 0, n), now: 1).status == 403)
        let hash = try #require(MerkleHash(hex: String(repeating: "01", count: 32)))
        #expect(w.addCheckpoint(body(old: 0, proof: [hash], n), now: 1).status == 422)
        for (bad, says) in [
            ("old 01\n\n" + n.serialized, "old <size>"),
            ("new 0\n\n" + n.serialized, "old <size>"),
            ("old 0\n" + n.serialized, "proof line 1"),
            ("old 0\nnot base64\n\n" + n.serialized, "proof line 1"),
            ("old 0\n" + String(repeating: "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n", count: 64) + "\n" + n.serialized, "at most 63"),
            ("old 0\n\nexample.org/witness-test\n1\n", "checkpoint"),
        ] {
            let reply = w.addCheckpoint(Array(bad.utf8), now: 1)
            #expect(reply.status == 400 && reply.body.contains(says), "\(bad.prefix(40).debugDescription): \(reply)")
        }
        #expect(w.state.latest.isEmpty)
        #expect(throws: WitnessError.self) { try WitnessState(parsing: "example.org/a 12\n") }
        #expect(throws: WitnessError.self) { try WitnessState(parsing: "a 1 \(Data(count: 32).base64EncodedString())\na 2 \(Data(count: 32).base64EncodedString())\n") }
        #expect(try witness().verifierKey.description.hasPrefix("witness.example/w1+"))
    }
}
