public import BallotDomain
public import BallotCollections
public import BallotStore
public import BallotFormat
public import BallotAudit

/// A dry run: commands decided against the ledger as it stands plus the trial's own earlier
/// commands, with nothing written. `Ledger.trial` carries it from batch to batch.
public struct Trial: Sendable {
    /// The ledger's state with the trial's accepted commands applied; nil before the first batch.
    var state: LedgerState?
    /// Idempotency slots the trial has used, with a digest of the command that used each.
    var keys: [Key128: Key128] = [:]

    public init() {}
}

extension Ledger {
    /// Decides `batch` as `submit` would, after everything earlier in `trial`, and writes
    /// nothing. An accepted command comes back as `.appended` with the sequence number it would
    /// get and an all-zero leaf hash; a key already in the ledger as `.repeated` or a `conflict`.
    public func trial(_ batch: [Submission], _ trial: inout Trial) throws -> [Outcome] {
        var state = trial.state ?? self.state.forked()
        defer { trial.state = state }
        let now = max(clock.now(), writer.lastTimestamp)
        let zero = [UInt8](repeating: 0, count: 32).withUnsafeBytes { MerkleHash($0) }
        return try batch.map { submission -> Outcome in
            let key = submission.idempotencyKey
            var used: (slot: Key128, content: Key128)?
            if let slot = writer.idempotency.slot(of: submission) {
                let content = IdempotencySlot.key(String(describing: submission.command))
                if let original = try writer.idempotency.original(of: key, in: IdempotencyScope(submission.command), slot: slot,
                                                                  lastSeq: writer.state.lastSeq,
                                                                  record: { try reader.record($0) }) {
                    guard submission.command.matches(original.event) else {
                        return .refused(DomainError(.conflict, "idempotency key '\(key)' was already used for event \(original.seq) (\(original.event.kind) in '\(original.event.election?.value ?? "")') with different content"))
                    }
                    return .repeated(Receipt(seq: original.seq, leafHash: zero))
                }
                if let earlier = trial.keys[slot] {
                    guard earlier == content else {
                        return .refused(DomainError(.conflict, "idempotency key '\(key)' is used earlier in this dry run with different content"))
                    }
                    return .repeated(Receipt(seq: 0, leafHash: zero))
                }
                used = (slot, content)
            }
            let event: Event
            do {
                event = try state.decide(submission.command, at: now) { seq in
                    guard case .voteCast(let vote)? = try self.reader.record(seq)?.event else { return nil }
                    return vote
                }
            } catch let refusal as DomainError {
                return .refused(refusal)
            }
            if let refusal = JurySignatures.refusal(event, after: state, ledger: writer.ledgerID) { return .refused(refusal) }
            let seq = state.lastSeq + 1
            state.apply(RecordedEvent(seq: seq, timestamp: now, actor: submission.actor, idempotencyKey: key, event: event))
            if let used { trial.keys[used.slot] = used.content }
            return .appended(Receipt(seq: seq, leafHash: zero))
        }
    }
}
