import Testing
import Foundation
import TestSupport
import BallotClient
import BallotLedger
import BallotFormat
import BallotDomain
import BallotAudit

/// Adversarial proofs (issue 18, method 4), against a real ledger: its inclusion and consistency
/// proofs, its signed checkpoints and its receipts, each mutated at random (10,000 of each
/// kind; `BALLOT_ADVERSARIAL_COUNT` sets it). Neither the checks `ballot-replay` makes
/// (`MerkleTree`'s verifiers, `ProofChecks`, which its `receipt` and `diff` run) nor the
/// independent Python verifier (`verify-ledger.py --check-proofs`) accepts a single one, and
/// both accept every claim as it was before its mutation. `ballot-replay receipt` itself, a
/// process per receipt, is run on the first `BALLOT_ADVERSARIAL_CLI` receipts (50 by default).
@Suite(.serialized, .timeLimit(.minutes(10))) struct AdversarialReceiptTests {
    static let count = Int(ProcessInfo.processInfo.environment["BALLOT_ADVERSARIAL_COUNT"] ?? "") ?? 10_000
    static let cliCount = Int(ProcessInfo.processInfo.environment["BALLOT_ADVERSARIAL_CLI"] ?? "") ?? 50

    /// A claim as the Python verifier reads it, with what the Swift checks said of it.
    struct Claim {
        var json: [String: Any]
        var swiftAccepts: Bool
        var shouldHold: Bool
    }

    static func hex(_ d: Digest32) -> String { d.hex }
    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    static func flipBit(_ d: Digest32, _ rng: inout SplitMix64) -> Digest32 {
        var bytes = d.withBytes { Array($0) }
        bytes[Int(rng.next() % 32)] ^= UInt8(1) << UInt8(rng.next() % 8)
        return bytes.withUnsafeBytes { Digest32($0) }
    }

    /// The record as a checkpoint signed by `pinned`, through the codec and `ProofChecks`, as
    /// `ballot-replay` reads a checkpoint; nil when it is not one.
    static func signedCheckpoint(_ record: [UInt8], seq: UInt64, pinned: Digest32) -> Checkpoint? {
        guard let decoded = try? record.withUnsafeBytes({ try RecordCodec.decode($0, seq: seq) }),
              case .checkpointSigned(let c) = decoded.event,
              (try? ProofChecks.signed(c, at: seq, pinnedKey: pinned)) != nil else { return nil }
        return c
    }

    @Test func noMutatedProofCheckpointOrReceiptIsAccepted() throws {
        let dir = TemporaryDirectory("adversarial")
        let key = try CheckpointKey(seed: Array(repeating: 9, count: 32))
        let other = try CheckpointKey(seed: Array(repeating: 10, count: 32))
        let path = dir.sub("ledger")
        var checkpointSeqs: [UInt64] = []
        do {
            let ledger = try Ledger(path: path, options: Fixtures.options(), clock: ManualClock(Fixtures.now), checkpointKey: key)
            _ = try ledger.submit(Fixtures.setUpCommands().map { Submission($0, by: Fixtures.admin) })
            for round in 0..<8 {
                _ = try ledger.submit(Fixtures.votes((round * 40)..<(round * 40 + 40)).map { Submission($0, by: Fixtures.importer) })
                checkpointSeqs.append(try #require(try ledger.submit(Submission(.takeCheckpoint(.request), by: Fixtures.admin)).receipt).seq)
            }
        }
        let pubkeyFile = dir.sub("checkpoint.key.pub")
        try Data(key.publicKey.hex.utf8).write(to: URL(fileURLWithPath: pubkeyFile))
        let ledger = try Ledger(path: path, options: Fixtures.options(), clock: ManualClock(Fixtures.now), checkpointKey: key)
        let reader = ledger.reader
        let size = ledger.size
        let pinned = key.publicKey
        var checkpoints: [UInt64: (record: [UInt8], checkpoint: Checkpoint)] = [:]
        for seq in checkpointSeqs {
            let record = try #require(try reader.rawRecord(seq))
            checkpoints[seq] = (record, try #require(Self.signedCheckpoint(record, seq: seq, pinned: pinned)))
        }
        var rng = SplitMix64(seed: 4)
        var claims: [Claim] = []

        // Inclusion proofs of the ledger's own events.
        for n in 0..<(2 * Self.count) {
            let treeSize = rng.next() % size + 1, seq = rng.next() % treeSize + 1
            var (leaf, index) = (try #require(try reader.leafHash(seq)), seq - 1)
            let s = treeSize
            var proof = try reader.inclusionProof(seq: seq, size: treeSize)
            var root = try reader.root(size: treeSize).root
            let holds = n % 2 == 0
            if !holds {
                switch rng.next() % 5 {
                case 0: leaf = Self.flipBit(leaf, &rng)
                case 1 where treeSize > 1: index = (index + 1 + rng.next() % (treeSize - 1)) % treeSize
                case 2: root = try reader.root(size: treeSize == 1 ? 2 : treeSize - 1).root
                case 3 where !proof.isEmpty: proof[Int(rng.next() % UInt64(proof.count))] = Self.flipBit(proof[0], &rng)
                case 4: proof.append(leaf)
                default: leaf = Self.flipBit(leaf, &rng)
                }
            }
            claims.append(Claim(json: ["kind": "inclusion", "leaf": leaf.hex, "index": index, "size": s, "root": root.hex, "proof": proof.map(\.hex)],
                                swiftAccepts: MerkleTree.verifyInclusion(leaf: leaf, index: index, size: s, proof: proof, root: root),
                                shouldHold: holds))
        }

        // Consistency proofs between two of its sizes.
        for n in 0..<(2 * Self.count) {
            let newSize = rng.next() % (size - 1) + 2, oldSize = rng.next() % (newSize - 1) + 1
            var (oldRoot, newRoot) = (try reader.root(size: oldSize).root, try reader.root(size: newSize).root)
            var proof = try reader.consistencyProof(oldSize: oldSize, newSize: newSize)
            let holds = n % 2 == 0
            if !holds {
                switch rng.next() % 4 {
                case 0: oldRoot = Self.flipBit(oldRoot, &rng)
                case 1: newRoot = try reader.root(size: newSize == size ? newSize - 1 : newSize + 1).root
                case 2 where !proof.isEmpty: proof.remove(at: Int(rng.next() % UInt64(proof.count)))
                default: proof.insert(Self.flipBit(newRoot, &rng), at: Int(rng.next() % UInt64(proof.count + 1)))
                }
            }
            claims.append(Claim(json: ["kind": "consistency", "old_size": oldSize, "new_size": newSize, "old_root": oldRoot.hex,
                                       "new_root": newRoot.hex, "proof": proof.map(\.hex)],
                                swiftAccepts: MerkleTree.verifyConsistency(oldSize: oldSize, newSize: newSize, oldRoot: oldRoot, newRoot: newRoot, proof: proof),
                                shouldHold: holds))
        }

        // Signed checkpoints: a bit of what the signature covers flipped, or of the signature,
        // another checkpoint's signature, or another key pinned. A noted checkpoint (type 13)
        // signs its note (origin, size, root): its other fields are covered by the next
        // checkpoint's tree, not by its own signature (docs/ledger-format.md §3.1), so a record
        // alone vouches for the note's fields only.
        for n in 0..<(2 * Self.count) {
            let seq = checkpointSeqs[Int(rng.next() % UInt64(checkpointSeqs.count))]
            var record = checkpoints[seq]!.record
            var pin = pinned
            let holds = n % 2 == 0
            if !holds {
                // The payload starts after the 29-byte header and the idempotency key (§2).
                let payload = 29 + Int(record[23]) << 8 + Int(record[24])
                switch rng.next() % 4 {
                case 0, 1:
                    var signed = Array(payload..<record.count)
                    if let origin = checkpoints[seq]!.checkpoint.origin {
                        // size and root; then the origin (with its length), the key and the signature
                        signed = Array(payload..<(payload + 40)) + Array((record.count - 96 - 2 - origin.utf8.count)..<record.count)
                    }
                    record[signed[Int(rng.next() % UInt64(signed.count))]] ^= UInt8(1) << UInt8(rng.next() % 8)
                case 2:
                    let donor = checkpoints[checkpointSeqs[(checkpointSeqs.firstIndex(of: seq)! + 1) % checkpointSeqs.count]]!.record
                    record.replaceSubrange((record.count - 64)..., with: donor.suffix(64))
                default: pin = other.publicKey
                }
            }
            claims.append(Claim(json: ["kind": "checkpoint", "record": Self.hex(record), "seq": seq, "pubkey": pin.hex],
                                swiftAccepts: Self.signedCheckpoint(record, seq: seq, pinned: pin) != nil, shouldHold: holds))
        }

        // Receipts: a vote's (seq, leaf hash) against a checkpoint that covers it, with the
        // proof. The forger changes the hash, the seq, the proof, the checkpoint or the key.
        struct Receipt { var seq: UInt64, leaf: Digest32, checkpoint: UInt64, pin: Digest32, proof: [MerkleHash] }
        // (The receipt, and whether `ballot-replay receipt` must accept it: it takes no proof, but
        // reads one from the ledger, so a mutated proof alone leaves the receipt it checks true.)
        var receipts: [(Receipt, Bool)] = []
        for n in 0..<(2 * Self.count) {
            let cp = checkpointSeqs[Int(rng.next() % UInt64(checkpointSeqs.count - 1)) + 1]
            let covered = checkpoints[cp]!.checkpoint.size
            let seq = rng.next() % covered + 1
            var r = Receipt(seq: seq, leaf: try #require(try reader.leafHash(seq)), checkpoint: cp, pin: pinned,
                            proof: try reader.inclusionProof(seq: seq, size: covered))
            let holds = n % 2 == 0
            var holdsForTheCLI = holds
            if !holds {
                switch rng.next() % 6 {
                case 0: r.leaf = Self.flipBit(r.leaf, &rng)
                case 1: r.leaf = try #require(try reader.leafHash(seq % covered + 1))
                case 2:   // another position, with that position's own proof
                    r.seq = seq % covered + 1
                    r.proof = try reader.inclusionProof(seq: r.seq, size: covered)
                case 3:   // a checkpoint taken before the event
                    guard let earlier = checkpointSeqs.last(where: { checkpoints[$0]!.checkpoint.size < seq }) else { r.pin = other.publicKey; break }
                    r.checkpoint = earlier
                case 4 where !r.proof.isEmpty:
                    r.proof[Int(rng.next() % UInt64(r.proof.count))] = Self.flipBit(r.leaf, &rng)
                    holdsForTheCLI = true
                default: r.pin = other.publicKey
                }
            }
            receipts.append((r, holdsForTheCLI))
            let accepts = (try? ProofChecks.receipt(reader, seq: r.seq, leafHash: r.leaf, checkpointAt: r.checkpoint,
                                                    pinnedKey: r.pin, proof: r.proof)) != nil
            claims.append(Claim(json: ["kind": "receipt", "seq": r.seq, "leaf_hash": r.leaf.hex, "checkpoint_seq": r.checkpoint,
                                       "checkpoint": Self.hex(checkpoints[r.checkpoint]!.record), "pubkey": r.pin.hex, "proof": r.proof.map(\.hex)],
                                swiftAccepts: accepts, shouldHold: holds))
        }

        // The Swift checks: every original holds, no mutation does.
        for kind in ["inclusion", "consistency", "checkpoint", "receipt"] {
            let of = claims.filter { $0.json["kind"] as? String == kind }
            let refusedTrue = of.filter { $0.shouldHold && !$0.swiftAccepts }.count
            let acceptedFalse = of.filter { !$0.shouldHold && $0.swiftAccepts }.map { "\($0.json)" }
            #expect(refusedTrue == 0, "\(refusedTrue) true \(kind) claims refused")
            #expect(acceptedFalse.isEmpty, "\(acceptedFalse.count) mutated \(kind) claims accepted, the first: \(acceptedFalse.first ?? "")")
        }

        // The Python verifier, from docs/ledger-format.md alone, on the same claims.
        let file = dir.sub("claims.jsonl")
        var lines = Data()
        for claim in claims {
            lines.append(try JSONSerialization.data(withJSONObject: claim.json))
            lines.append(0x0A)
        }
        try lines.write(to: URL(fileURLWithPath: file))
        let python = try runPythonVerifier(["--check-proofs", file])
        #expect(python.status == 0, "\(python.stderr)")
        let verdicts = python.stdout.split(separator: "\n")
        #expect(verdicts.count == claims.count)
        for (claim, verdict) in zip(claims, verdicts) {
            if claim.shouldHold {
                #expect(verdict == "accepted", "the Python verifier refused a true \(claim.json["kind"]!) claim: \(verdict)")
            } else {
                #expect(verdict.hasPrefix("refused"), "the Python verifier accepted a mutated \(claim.json["kind"]!) claim: \(claim.json)")
            }
        }

        // ballot-replay receipt, a process per receipt, on the first ones.
        for (r, holds) in receipts.prefix(Self.cliCount) {
            let pinFile = r.pin == pinned ? pubkeyFile : dir.sub("other.key.pub")
            if r.pin != pinned { try Data(other.publicKey.hex.utf8).write(to: URL(fileURLWithPath: pinFile)) }
            let run = try runTool("ballot-replay", ["receipt", "--ledger", path, "--seq", "\(r.seq)", "--leaf-hash", r.leaf.hex,
                                                    "--checkpoint", "\(r.checkpoint)", "--pubkey", pinFile])
            #expect((run.status == 0) == holds, "ballot-replay receipt exit \(run.status) for a \(holds ? "true" : "mutated") receipt: \(run.stdout) \(run.stderr)")
        }
        let mutated = claims.filter { !$0.shouldHold }.count
        print("AdversarialReceiptTests: \(mutated) mutated claims (\(Self.count) each of inclusion and consistency proofs, checkpoints and receipts), none accepted by the Swift checks or the Python verifier; \(Self.cliCount) receipts through ballot-replay")
    }
}
