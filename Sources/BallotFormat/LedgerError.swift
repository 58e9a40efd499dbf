public import BallotStore
public import BallotDomain
public import BallotCollections

/// Why a ledger operation failed, with where: the sequence number, the file, the field.
public enum LedgerError: Error, CustomStringConvertible, Sendable {
    /// A stored record does not decode, or does not fit the records around it.
    case corruptRecord(seq: UInt64, reason: String)
    /// A record a follower's primary sent does not verify (`Ledger.replicate`): nothing of its
    /// chunk was stored.
    case unverifiedRecord(seq: UInt64, reason: String)
    /// The ledger was written by a newer (or unknown) format version.
    case unsupportedFormat(found: UInt8, supported: UInt8, at: String)
    /// The operator's voter secret is unusable (too short).
    case invalidSecret(String)
    /// The checkpoint signing key is unusable.
    case badKey(String)
    /// The origin given for the checkpoints is not one, or not the ledger's.
    case badOrigin(String)
    /// The storage layer failed; `context` says what the ledger was doing.
    case store(StoreError)
    /// A table kept between starts (the voters, the idempotency keys) could not have its room.
    case tables(TableError)
    /// A request for something the ledger does not hold: a sequence number or tree size past
    /// its end, or a proof between sizes in the wrong order.
    case outOfRange(String)

    public var description: String {
        switch self {
        case .corruptRecord(let seq, let reason): "corrupt record at sequence number \(seq): \(reason)"
        case .unverifiedRecord(let seq, let reason): "the primary's event \(seq) does not verify: \(reason); nothing of its chunk was stored"
        case .unsupportedFormat(let found, let supported, let at):
            "\(at) uses ledger format version \(found); this build reads version \(supported)"
        case .invalidSecret(let reason), .badKey(let reason), .badOrigin(let reason): reason
        case .store(let error): error.description
        case .tables(let error) where error.isStorageFull:
            "the file system holding the ledger's kept tables is full: \(error); nothing of this batch was written"
        case .tables(let error): "the ledger's kept tables: \(error)"
        case .outOfRange(let what): what
        }
    }

    /// True when the map reached its maximum size: the `ledger_full` refusal.
    public var isLedgerFull: Bool {
        if case .store(let e) = self { return e.kind == .ledgerFull }
        return false
    }

    /// True when the disk holding the ledger is full: the `storage_full` refusal.
    public var isStorageFull: Bool {
        if case .store(let e) = self { return e.kind == .storageFull }
        if case .tables(let e) = self { return e.isStorageFull }
        return false
    }

    /// True when the disk reported an I/O error on a commit: the `storage_failed` refusal.
    public var isStorageFailed: Bool {
        if case .store(let e) = self { return e.kind == .storageFailed }
        return false
    }

    /// The refusal a client gets when a write fails for the ledger's storage, if it is one of
    /// those an operator acts on (frees space, raises `max_map_size`, looks at the disk); nil for
    /// `internal`.
    public var storageCode: ErrorCode? {
        isLedgerFull ? .ledgerFull : isStorageFull ? .storageFull : isStorageFailed ? .storageFailed : nil
    }
}
