/// The daemon's statement of the ledger's state: "the first `size` events have this Merkle root
/// (signed), and after them every election's published numbers had these digests". Recorded
/// as an event (`checkpoint.noted`, or `checkpoint.signed` before the notes) right after the
/// events it covers, so `size` is always the record's sequence number − 1. The ledger layer computes the root and digests and signs; the
/// domain only checks where it stands (see `LedgerState.decide`).
public struct Checkpoint: Sendable, Equatable {
    public enum Reason: UInt8, Sendable, CaseIterable, CustomStringConvertible {
        case request = 1
        case interval = 2
        case votingClosed = 3
        case resultCertified = 4

        public var description: String {
            switch self {
            case .request: "request"
            case .interval: "interval"
            case .votingClosed: "voting_closed"
            case .resultCertified: "result_certified"
            }
        }
    }

    /// SHA-256 of an election's three projection documents (canonical JSON).
    public struct ElectionDigests: Sendable, Equatable {
        public var election: ElectionID
        public var tally: Digest32
        public var jury: Digest32
        public var ranking: Digest32

        public init(election: ElectionID, tally: Digest32, jury: Digest32, ranking: Digest32) {
            self.election = election
            self.tally = tally
            self.jury = jury
            self.ranking = ranking
        }
    }

    public var size: UInt64
    public var root: Digest32
    public var takenAt: Timestamp
    public var reason: Reason
    /// Every election defined among the first `size` events, in definition order.
    public var elections: [ElectionDigests]
    /// The origin line of the checkpoint as a C2SP note (c2sp.org/tlog-checkpoint), which the
    /// signature is over and whose key name it is: the log's name, the same for all of a
    /// ledger's checkpoints. Nil for a checkpoint signed in this ledger's own form, as every
    /// one was before the notes (event type 12, docs/ledger-format.md §3.1).
    public var origin: String?
    /// The Ed25519 public key that signed.
    public var publicKey: Digest32
    /// The Ed25519 signature, 64 bytes.
    public var signature: [UInt8]

    public static let signatureBytes = 64

    public init(size: UInt64, root: Digest32, takenAt: Timestamp, reason: Reason, elections: [ElectionDigests],
                origin: String? = nil, publicKey: Digest32, signature: [UInt8]) {
        self.size = size
        self.root = root
        self.takenAt = takenAt
        self.reason = reason
        self.elections = elections
        self.origin = origin
        self.publicKey = publicKey
        self.signature = signature
    }

    /// Whether it stands where a checkpoint must: directly after the events it covers, stamped
    /// with its record's time, listing exactly the elections defined so far. The root, digests
    /// and signature need hashing and are checked by the ledger layer.
    func validate(in state: LedgerState, seq: UInt64, at now: Timestamp) throws {
        guard size + 1 == seq else {
            throw DomainError(.badRequest, "a checkpoint at event \(seq) must cover the \(seq - 1) events before it, not \(size)")
        }
        guard takenAt == now else {
            throw DomainError(.badRequest, "checkpoint taken at \(takenAt) but recorded at \(now)")
        }
        let defined = state.elections.map(\.id)
        guard elections.map(\.election) == defined else {
            throw DomainError(.badRequest, "the checkpoint lists elections \(elections.map(\.election.value)); the ledger defines \(defined.map(\.value))")
        }
        // A log keeps its name, and once its checkpoints are notes, they stay notes.
        if let last = state.lastCheckpoint, let kept = last.checkpoint.origin {
            guard let origin else {
                throw DomainError(.badRequest, "a checkpoint after the note at event \(last.seq) must be a note of origin '\(kept)' too")
            }
            guard origin == kept else {
                throw DomainError(.badRequest, "a checkpoint of origin '\(origin.prefix(Limits.checkpointOrigin))' after one of origin '\(kept)' (event \(last.seq)): a log keeps its name")
            }
        }
        if let origin, !Self.isOrigin(origin) {
            throw DomainError(.badRequest, "a checkpoint's origin is 1 to \(Limits.checkpointOrigin) printable ASCII characters but spaces and plus signs, not '\(origin.prefix(Limits.checkpointOrigin))'")
        }
        guard signature.count == Self.signatureBytes else {
            throw DomainError(.badRequest, "a checkpoint signature is \(Self.signatureBytes) bytes, not \(signature.count)")
        }
    }

    /// Whether `origin` may name a log: 1 to `Limits.checkpointOrigin` printable ASCII
    /// characters (0x21 to 0x7E) but the plus sign, so a note's key name (signed-note: no spaces,
    /// no plus), and one spelling only: two origins are the same log exactly when their bytes are.
    public static func isOrigin(_ origin: String) -> Bool {
        !origin.isEmpty && origin.utf8.count <= Limits.checkpointOrigin
            && origin.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "+") }
    }
}
