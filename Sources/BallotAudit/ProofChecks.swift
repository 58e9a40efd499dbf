public import BallotDomain
public import BallotFormat

/// What an auditor checks before believing a checkpoint or a vote's receipt, in one place:
/// `ballot-replay receipt` and `diff` call it, and so do the adversarial tests.
public enum ProofChecks {
    /// Why a checkpoint or a receipt does not hold.
    public struct Refusal: Error, CustomStringConvertible {
        public enum Kind: Sendable {
            /// The claim names something the ledger does not hold (no such event, not a checkpoint, not covered).
            case outOfRange
            /// The claim is false, or the ledger was altered.
            case tampered
            /// The ledger could not be read.
            case unreadable
        }
        public let kind: Kind
        public let message: String
        public var description: String { message }
        init(_ kind: Kind, _ message: String) { (self.kind, self.message) = (kind, message) }
    }

    /// A checkpoint's signature verifies, by `pinnedKey` when one is given.
    public static func signed(_ checkpoint: Checkpoint, at seq: UInt64, pinnedKey: Digest32?) throws(Refusal) {
        if let pinnedKey, pinnedKey != checkpoint.publicKey {
            throw Refusal(.tampered, "the checkpoint at event \(seq) is signed by key \(checkpoint.publicKey.hex), not the key given")
        }
        guard checkpoint.hasValidSignature else {
            throw Refusal(.tampered, "the checkpoint at event \(seq): its signature does not verify")
        }
    }

    /// The checkpoint recorded at event `seq`: signed (by `pinnedKey`, when given), and the root
    /// it signs is the ledger's own.
    public static func checkpoint(_ reader: LedgerReader, at seq: UInt64, pinnedKey: Digest32?) throws(Refusal) -> Checkpoint {
        let checkpoint = try reading { try reader.checkpoint(at: seq) }
        try signed(checkpoint, at: seq, pinnedKey: pinnedKey)
        let root = try reading { try reader.root(size: checkpoint.size).root }
        guard root == checkpoint.root else {
            throw Refusal(.tampered, "the checkpoint at event \(seq) signs root \(checkpoint.root.hex) for events 1…\(checkpoint.size), but the ledger's tree gives \(root.hex)")
        }
        return checkpoint
    }

    /// A vote's receipt (its sequence number and leaf hash, from the ack): the event at `seq`
    /// hashes to `leafHash`, the checkpoint at `checkpointAt` holds and covers it, and `proof`
    /// (the ledger's own when nil) leads from the leaf to the root that checkpoint signs.
    /// Returns the checkpoint and the proof.
    public static func receipt(_ reader: LedgerReader, seq: UInt64, leafHash: Digest32, checkpointAt: UInt64,
                               pinnedKey: Digest32?, proof given: [MerkleHash]? = nil) throws(Refusal) -> (checkpoint: Checkpoint, proof: [MerkleHash]) {
        try leaf(reader, seq: seq, is: leafHash)
        let c = try checkpoint(reader, at: checkpointAt, pinnedKey: pinnedKey)
        guard seq >= 1, seq <= c.size else {
            throw Refusal(.outOfRange, "the checkpoint at event \(checkpointAt) covers events 1…\(c.size), not \(seq)")
        }
        let proof: [MerkleHash]
        if let given { proof = given } else { proof = try reading { try reader.inclusionProof(seq: seq, size: c.size) } }
        guard MerkleTree.verifyInclusion(leaf: leafHash, index: seq - 1, size: c.size, proof: proof, root: c.root) else {
            throw Refusal(.tampered, "the inclusion proof of event \(seq) does not lead to the root the checkpoint at event \(checkpointAt) signs")
        }
        return (c, proof)
    }

    /// The event at `seq` is in the ledger and hashes to `leafHash`.
    public static func leaf(_ reader: LedgerReader, seq: UInt64, is leafHash: Digest32) throws(Refusal) {
        guard let stored = try reading({ try reader.leafHash(seq) }) else {
            throw Refusal(.tampered, "the ledger holds no event \(seq): the receipt's event is missing")
        }
        guard stored == leafHash else {
            throw Refusal(.tampered, "event \(seq) hashes to \(stored.hex), not the receipt's \(leafHash.hex): the event was altered or replaced")
        }
    }

    /// Runs a read of the ledger, its errors as refusals.
    private static func reading<R>(_ body: () throws -> R) throws(Refusal) -> R {
        do {
            return try body()
        } catch let error as LedgerError {
            switch error {
            case .outOfRange(let what): throw Refusal(.outOfRange, what)
            case .corruptRecord: throw Refusal(.tampered, "\(error)")
            default: throw Refusal(.unreadable, "\(error)")
            }
        } catch {
            throw Refusal(.unreadable, "\(error)")
        }
    }
}
