public import BallotDomain
import Crypto
public import BallotCollections

/// The Ed25519 key the daemon signs checkpoints with. On disk it is the 32-byte seed in hex
/// (64 characters); the public key is what auditors are handed.
public struct CheckpointKey: Sendable {
    /// The 32-byte seed, for writing the key file. (Crypto's key type is not `Sendable`; the
    /// seed is, and rebuilding the key from it costs microseconds per checkpoint.)
    public let seed: [UInt8]
    public let publicKey: Digest32

    private var key: Curve25519.Signing.PrivateKey {
        // The seed was checked in `init`.
        try! Curve25519.Signing.PrivateKey(rawRepresentation: seed)
    }

    /// A new random key.
    public init() { try! self.init(seed: Array(Curve25519.Signing.PrivateKey().rawRepresentation)) }

    /// From the 32-byte seed.
    public init(seed: [UInt8]) throws {
        guard seed.count == 32, let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed) else {
            throw LedgerError.badKey("an Ed25519 checkpoint key is a 32-byte seed; got \(seed.count) bytes")
        }
        self.seed = seed
        publicKey = key.publicKey.rawRepresentation.withUnsafeBytes { Digest32($0) }
    }

    package func sign(_ message: [UInt8]) -> [UInt8] {
        // Only fails if the platform's randomness fails, which the process cannot survive anyway.
        guard let signature = try? key.signature(for: message) else {
            fatalError("Ed25519 signing failed")
        }
        return Array(signature)
    }
}

/// What signs a ledger's checkpoints: its key, and the origin (the log's name) its notes carry.
public struct CheckpointSigner: Sendable {
    public let origin: String
    public let key: CheckpointKey

    public init(origin: String, key: CheckpointKey) {
        self.origin = origin
        self.key = key
    }

    /// The origin of a ledger whose id is `ledgerID` when none is configured.
    public static func defaultOrigin(ledgerID: [UInt8]) -> String {
        "ballotledger/" + ledgerID.withUnsafeBytes { hexString($0) }
    }

    /// The origin a ledger's new checkpoints carry: the configured one, else the one its last
    /// checkpoint carries, else the default. A log keeps its name (witnesses know it by it), so a
    /// configured origin other than the one the ledger's checkpoints already carry is refused.
    public static func origin(configured: String?, last: Checkpoint?, ledgerID: [UInt8]) throws(LedgerError) -> String {
        if let configured {
            guard Checkpoint.isOrigin(configured) else {
                throw .badOrigin("checkpoint_origin '\(configured.prefix(300))' is not an origin: 1 to \(Limits.checkpointOrigin) printable ASCII characters but spaces and plus signs, such as example.org/election-2026")
            }
            if let kept = last?.origin, kept != configured {
                throw .badOrigin("checkpoint_origin is '\(configured)', but this ledger's checkpoints carry the origin '\(kept)'; a log keeps its name, which its witnesses and monitors know it by")
            }
            return configured
        }
        return last?.origin ?? defaultOrigin(ledgerID: ledgerID)
    }
}

extension Checkpoint {
    /// The bytes the signature covers. A noted checkpoint's: its note's text (origin, size,
    /// base64 root; c2sp.org/tlog-checkpoint). An older one's: a context string (so that no
    /// other message this key might sign can pass for a checkpoint), then the payload up to
    /// the public key.
    public var signedMessage: [UInt8] {
        if let noteText { return Array(noteText.utf8) }
        var w = ByteWriter(capacity: 128 + elections.count * 100)
        Self.signatureContext.withUnsafeBytes { w.raw($0) }
        PayloadCodec.encodeSignedPart(self, into: &w)
        return w.bytes
    }

    /// "BallotLedger checkpoint v1" and a zero byte (docs/ledger-format.md §3.1).
    package static let signatureContext: [UInt8] = Array("BallotLedger checkpoint v1".utf8) + [0]

    /// Whether the signature is the public key's over `signedMessage`.
    public var hasValidSignature: Bool {
        guard let key = publicKey.withBytes({ try? Curve25519.Signing.PublicKey(rawRepresentation: $0) }) else { return false }
        return key.isValidSignature(signature, for: signedMessage)
    }

    /// The text of the checkpoint as a C2SP note; nil for a checkpoint from before the notes.
    public var noteText: String? { origin.map { CheckpointNote(origin: $0, size: size, root: root).text } }

    /// The checkpoint as a C2SP signed note, signed by the key under the origin's name: what
    /// witnesses cosign and Go's `sumdb/note` opens. Nil for a checkpoint from before the notes.
    public var note: SignedNote? {
        guard let origin, let noteText else { return nil }
        return SignedNote(text: noteText, signatures: [SignedNote.Signature(
            name: origin, keyID: SignedNote.keyID(name: origin, type: SignedNote.ed25519, publicKey: publicKey), bytes: signature)])
    }

    /// A signed checkpoint of `state` (whose Merkle root is `root`) at `now`, as a note.
    package static func make(_ reason: Reason, state: LedgerState, root: Digest32, at now: Timestamp,
                             signer: CheckpointSigner) -> Checkpoint {
        var checkpoint = Checkpoint(size: state.lastSeq, root: root, takenAt: now, reason: reason,
                                    elections: digests(of: state), origin: signer.origin, publicKey: signer.key.publicKey,
                                    signature: [])
        checkpoint.signature = signer.key.sign(checkpoint.signedMessage)
        return checkpoint
    }

    /// SHA-256 of each election's tally, jury table and ranking documents, in definition order.
    public static func digests(of state: LedgerState) -> [ElectionDigests] {
        state.elections.map { e in
            ElectionDigests(election: e.id, tally: sha256(Tally(e).json.serialized()),
                            jury: sha256(JuryTable(e).json.serialized()), ranking: sha256(Ranking(e).json.serialized()))
        }
    }

    /// What is wrong with this checkpoint, recorded after the events whose Merkle root is
    /// `root` and whose replay left `state`; nil when it is sound. `pinnedKey`, when given, is
    /// the only key accepted. The domain rules (`LedgerState.check`) cover where it stands.
    public func finding(root actualRoot: Digest32, state: LedgerState, pinnedKey: Digest32?) -> CheckpointFinding? {
        if let pinnedKey, pinnedKey != publicKey {
            return .badSignature("it is signed by key \(publicKey.hex), not the key given (\(pinnedKey.hex))")
        }
        guard hasValidSignature else {
            return .badSignature("its Ed25519 signature does not verify against key \(publicKey.hex)")
        }
        guard root == actualRoot else {
            return .wrongRoot("it signs root \(root.hex) for events 1…\(size), but they hash to \(actualRoot.hex)")
        }
        for (signed, replayed) in zip(elections, Self.digests(of: state)) {
            for (kind, a, b) in [("tally", signed.tally, replayed.tally), ("jury table", signed.jury, replayed.jury),
                                 ("ranking", signed.ranking, replayed.ranking)] where a != b {
                return .disagrees("it signs a \(kind) of '\(signed.election)' (SHA-256 \(a.hex)) that the replay of events 1…\(size) does not give (\(b.hex))")
            }
        }
        return nil
    }
}

/// Why a stored checkpoint fails verification.
public enum CheckpointFinding: Sendable, Equatable, CustomStringConvertible {
    /// The signature or key does not hold: the checkpoint record was altered or forged.
    case badSignature(String)
    /// Genuinely signed, but over another root: one of the events it covers was altered.
    case wrongRoot(String)
    /// Genuinely signed over the right events, but the numbers it signs are not what they give.
    case disagrees(String)

    public var description: String {
        switch self {
        case .badSignature(let s), .wrongRoot(let s), .disagrees(let s): s
        }
    }
}

private func sha256(_ bytes: [UInt8]) -> Digest32 {
    bytes.withUnsafeBytes { SHA256Digester.hash($0) }
}
