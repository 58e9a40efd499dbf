import FoundationEssentials
public import BallotDomain

/// What a juror signs, as the text of a signed note (c2sp.org/signed-note, with the juror's key
/// as the signer). Each statement is rebuilt from the event that holds its signature and the
/// ledger's id (its meta 'ledger_id', which `status` gives), so the ledger stores only the 64
/// signature bytes; docs/ledger-format.md §3.2 gives the same lines, which the Python verifier
/// builds too.
public enum JuryStatement {
    /// A score: the ledger, every field of the score, and the score it supersedes (0: none), so
    /// that a signature cannot be replayed in another ledger (a rehearsal's), another election,
    /// for another juror, or to undo an amendment.
    public static func score(_ s: JuryScore, ledger: [UInt8]) -> String {
        """
        ballotledger/jury-score/v1
        ledger \(hex(ledger))
        election \(s.election)
        juror \(s.juror)
        nominee \(s.nominee)
        criterion \(s.criterion)
        score \(s.score)
        supersedes \(s.supersedes ?? 0)

        """
    }

    /// A result the jury co-signs: the ledger and the `result.proposed` event that put it to
    /// the jury, its election and winner, the SHA-256 of its ranking (each nominee id and a
    /// newline, in rank order) and of its written justification (UTF-8).
    public static func result(ledger: [UInt8], proposal: UInt64, election: ElectionID, winner: NomineeID, ranking: [NomineeID],
                              justification: String) -> String {
        """
        ballotledger/jury-result/v1
        ledger \(hex(ledger))
        proposal \(proposal)
        election \(election)
        winner \(winner)
        ranking \(rankingDigest(ranking).hex)
        justification \(digest(Array(justification.utf8)).hex)

        """
    }

    public static func result(_ p: ResultProposal, proposedAt seq: UInt64, ledger: [UInt8]) -> String {
        result(ledger: ledger, proposal: seq, election: p.election, winner: p.winner, ranking: p.ranking, justification: p.justification)
    }

    private static func hex(_ bytes: [UInt8]) -> String { bytes.withUnsafeBytes { hexString($0) } }

    public static func rankingDigest(_ ranking: [NomineeID]) -> Digest32 {
        digest(Array(ranking.map { "\($0)\n" }.joined().utf8))
    }

    private static func digest(_ bytes: [UInt8]) -> Digest32 {
        bytes.withUnsafeBytes { SHA256Digester.hash($0) }
    }
}

/// The check of jurors' signatures that the rules cannot make (the domain has no Ed25519):
/// every signature an event carries verifies, with its juror's recorded key, over the statement
/// the event gives. The writer asks it of each event the rules decide, and the audit of each
/// recorded one: one check, in one place.
public enum JurySignatures {
    /// Why `event`, decided against `state` (the ledger just before it) in the ledger whose id
    /// is `ledger`, must not be recorded: a signature in it does not verify. Nil when it
    /// carries none or all verify.
    public static func refusal(_ event: Event, after state: LedgerState, ledger: [UInt8]) -> DomainError? {
        switch event {
        case .juryScored(let s):
            guard let signature = s.signature else { return nil }
            return check(JurorSignature(juror: s.juror, bytes: signature), of: JuryStatement.score(s, ledger: ledger), in: s.election, state,
                         what: "score for '\(s.nominee)' on '\(s.criterion)'")
        case .resultCosigned(let c):
            guard let proposal = state[c.election]?.proposal, proposal.seq == c.proposal else {
                return DomainError(.jurorSignature, "juror '\(c.signature.juror)' co-signed a proposal at event \(c.proposal), which is not the result awaiting the jury of '\(c.election)'")
            }
            return check(c.signature, of: JuryStatement.result(proposal.result, proposedAt: proposal.seq, ledger: ledger), in: c.election, state,
                         what: "co-signature")
        case .resultCertified(let r):
            let statement = JuryStatement.result(ledger: ledger, proposal: r.proposal, election: r.election, winner: r.winner, ranking: r.ranking,
                                                 justification: r.justification)
            for c in r.cosignatures {
                if let refusal = check(c, of: statement, in: r.election, state, what: "co-signature of the certified result") { return refusal }
            }
            return nil
        default:
            return nil
        }
    }

    private static func check(_ signature: JurorSignature, of statement: String, in election: ElectionID, _ state: LedgerState,
                              what: String) -> DomainError? {
        guard let key = state[election]?.key(ofJuror: signature.juror) else {
            return DomainError(.jurorSignature, "juror '\(signature.juror)' has no key recorded in '\(election)', so their \(what) cannot be signed")
        }
        guard SignedNote.ed25519Verifies(signature.bytes, over: Array(statement.utf8), publicKey: key.publicKey) else {
            return DomainError(.jurorSignature, "the \(what) of juror '\(signature.juror)' does not verify with their key '\(key.name)': it signs other bytes, or another key made it")
        }
        return nil
    }
}

extension VerifierKey {
    /// This key as a juror's (an Ed25519 key, type 0x01).
    public var jurorKey: JurorKey { JurorKey(name: name, publicKey: publicKey, keyID: keyID) }
}

extension JurorKey {
    /// The key in the vkey form (c2sp.org/signed-note).
    public var vkey: String { VerifierKey(name: name, type: SignedNote.ed25519, publicKey: publicKey).description }
}

/// A signer's private key in the form Go's `note.NewSigner` reads,
/// "PRIVATE+KEY+<name>+<key ID>+<base64 of 0x01 and the 32-byte seed>": a juror's key file
/// (`ballotctl jury keygen`).
public struct SignerKey: Sendable, CustomStringConvertible {
    public let name: String
    public let key: CheckpointKey

    public init(name: String, key: CheckpointKey = CheckpointKey()) throws(VerifierKey.Malformed) {
        guard SignedNote.isKeyName(name) else { throw VerifierKey.Malformed(reason: "'\(name.prefix(80))' is not a key name (not empty, no spaces, no '+')") }
        self.name = name
        self.key = key
    }

    public var verifierKey: VerifierKey { VerifierKey(name: name, type: SignedNote.ed25519, publicKey: key.publicKey) }

    public var description: String {
        let vkey = verifierKey.description.split(separator: "+")
        return "PRIVATE+KEY+\(name)+\(vkey[1])+\(Data([SignedNote.ed25519] + key.seed).base64EncodedString())"
    }

    public init(parsing text: String) throws(VerifierKey.Malformed) {
        let word = text.split(whereSeparator: \.isWhitespace).first.map(String.init) ?? ""
        // Base64 may hold '+' too: the key is whatever follows the fourth.
        let fields = word.split(separator: "+", maxSplits: 4, omittingEmptySubsequences: false)
        let parts = fields
        guard parts.count == 5, parts[0] == "PRIVATE", parts[1] == "KEY" else {
            throw VerifierKey.Malformed(reason: "a signer key is PRIVATE+KEY+<name>+<key ID>+<base64 key>")
        }
        guard let raw = Data(base64Encoded: String(parts[4])), raw.count == 33, raw.first == SignedNote.ed25519,
              let key = try? CheckpointKey(seed: Array(raw.dropFirst())) else {
            throw VerifierKey.Malformed(reason: "the key of \(parts[2]) is not the base64 of 0x01 and a 32-byte Ed25519 seed")
        }
        try self.init(name: String(parts[2]), key: key)
        guard String(parts[3]) == verifierKey.description.split(separator: "+")[1] else {
            throw VerifierKey.Malformed(reason: "the key ID of \(name) is \(parts[3]), but its name and key give another")
        }
    }

    /// The signature line of `text` by this key.
    public func sign(_ text: String) -> SignedNote.Signature { SignedNote.sign(text, name: name, key: key) }
}
