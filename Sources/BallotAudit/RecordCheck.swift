public import BallotDomain
public import BallotFormat

// What one record must satisfy against the state before it. The audit's rule pass asks it of
// every stored event (AuditRules.swift); a follower's writer asks it of every record the
// primary sends, before storing it (`Ledger.replicate`). One check, so that a follower accepts
// exactly what `ballot-replay verify` accepts.

extension Audit {
    /// Why `record` should not follow `state`: what the rules say of it (`LedgerState.check`:
    /// the command it answers, decided again, must give it back), then its juror's signature,
    /// which the rules leave to the one check that has Ed25519. Nil when it is sound. Errors
    /// of `lookupVote` (which reads the earlier vote an invalidation names) propagate.
    public static func ruleRefusal(_ record: RecordedEvent, after state: LedgerState, ledgerID: [UInt8],
                                   lookupVote: (UInt64) throws -> VoteCast?) throws -> DomainError? {
        if let refusal = try state.check(record, lookupVote: lookupVote) { return refusal }
        return JurySignatures.refusal(record.event, after: state, ledger: ledgerID)
    }

    /// What a recorded checkpoint shows, given the Merkle root of the events before it.
    public struct CheckpointCheck: Sendable {
        /// Each thing wrong with it, naming the event (or, for a wrong root, every event it covers).
        public var findings: [AuditFinding] = []
        /// Whether it holds as a checkpoint: signed by its key, over this root and these numbers.
        public var holds = true
    }

    /// Checks the checkpoint recorded at event `seq`: its key against `pinnedKey`, or unpinned
    /// against `earlierKey` (the key of the checkpoints before it: the signing key may not change
    /// within a ledger); its origin against the ledger's id, which a default origin names under a
    /// signature (the id itself is outside the tree); its signature, its root against
    /// `rootBefore`, and the numbers it signs against `state`.
    public static func checkpoint(_ checkpoint: Checkpoint, at seq: UInt64, rootBefore: MerkleHash, state: LedgerState,
                                  ledgerID: [UInt8], pinnedKey: Digest32?, earlierKey: Digest32?) -> CheckpointCheck {
        var check = CheckpointCheck()
        if pinnedKey == nil, let earlierKey, earlierKey != checkpoint.publicKey {
            check.findings.append(AuditFinding(severity: .tampered, events: seq...seq, what: "checkpoint: it is signed by key \(checkpoint.publicKey.hex), but the checkpoints before it by key \(earlierKey.hex): the signing key changed within the ledger; pass --pubkey with the daemon's key to tell which is genuine"))
        }
        let defaultOrigin = CheckpointSigner.defaultOrigin(ledgerID: ledgerID)
        if let origin = checkpoint.origin, origin.hasPrefix("ballotledger/"), origin.utf8.count == defaultOrigin.utf8.count, origin != defaultOrigin {
            check.findings.append(AuditFinding(severity: .tampered, events: seq...seq, what: "checkpoint: its origin '\(origin)' names another ledger id than this ledger's meta 'ledger_id' (\(defaultOrigin.dropFirst(13))), which jurors' statements name"))
        }
        let finding = checkpoint.finding(root: rootBefore, state: state, pinnedKey: pinnedKey)
        switch finding {
        case .badSignature(let what)?: check.findings.append(AuditFinding(severity: .tampered, events: seq...seq, what: "checkpoint: \(what)"))
        case .wrongRoot(let what)?: check.findings.append(AuditFinding(severity: .tampered, events: 1...max(checkpoint.size, 1), what: "checkpoint at event \(seq): \(what)"))
        case .disagrees(let what)?: check.findings.append(AuditFinding(severity: .disagrees, events: seq...seq, what: "checkpoint: \(what)"))
        case nil: break
        }
        check.holds = finding == nil
        return check
    }
}
