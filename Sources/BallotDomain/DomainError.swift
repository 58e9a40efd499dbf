/// A refused command: a stable code that scripts branch on and a message for a person that names
/// what was wrong (election, nominee, field, value).
public struct DomainError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: ErrorCode
    public var message: String

    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

/// The stable error codes, listed with their meaning in docs/architecture.md. The first group
/// is the contract's (shared/CONTRACT.md); the second is this project's own.
public enum ErrorCode: String, Sendable, CaseIterable {
    case badRequest = "bad_request"
    case unknownOp = "unknown_op"
    case forbidden
    case unknownElection = "unknown_election"
    case unknownNominee = "unknown_nominee"
    case notEligible = "not_eligible"
    case duplicateVote = "duplicate_vote"
    case outsideWindow = "outside_window"
    case electionSealed = "election_sealed"
    case sealed
    case conflict
    case ledgerFull = "ledger_full"
    /// The disk holding the ledger is full: nothing written; writes go on once there is room.
    case storageFull = "storage_full"
    /// The disk reported an I/O error on the commit: nothing of the batch written or acknowledged.
    case storageFailed = "storage_failed"
    case `internal`

    case electionExists = "election_exists"
    case nomineeExists = "nominee_exists"
    case jurorExists = "juror_exists"
    case unknownJuror = "unknown_juror"
    case unknownCriterion = "unknown_criterion"
    case unknownVote = "unknown_vote"
    case alreadyInvalidated = "already_invalidated"
    case nominationsClosed = "nominations_closed"
    case scoreOutOfRange = "score_out_of_range"
    case votingOpen = "voting_open"
    case votingClosed = "voting_closed"
    case juryOpen = "jury_open"
    case juryClosed = "jury_closed"
    case juryIncomplete = "jury_incomplete"
    /// A juror's signature is missing where the election requires one, does not verify with the
    /// juror's recorded key, or signs another statement; the message names the juror.
    case jurorSignature = "juror_signature"
    /// `result.certify` again while the result awaits its jurors' co-signatures (the message
    /// says who has signed), or a jury too small for the election's quorum.
    case juryQuorum = "jury_quorum"
    /// `result.certify` of an election that requires witnesses, on a daemon with no witness
    /// policy: nothing written.
    case noWitnesses = "no_witnesses"
    /// The certification is in the ledger, but no checkpoint covering it was cosigned by the
    /// witness policy's quorum in time; the message says which witnesses answered.
    case notWitnessed = "not_witnessed"
    /// A receipt asked for an event no checkpoint covers yet.
    case notCovered = "not_covered"
    /// (protocol) A write sent to a follower, which only serves reads; the message names its
    /// primary, where writes go.
    case readOnly = "read_only"
    /// Not a refusal of a command: what replay reports when a stored event is not the one the
    /// rules would give for it (see `LedgerState.check`).
    case corruptRecord = "corrupt_record"
}
