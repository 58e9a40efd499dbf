/// A finished batch import, on the record: which file, and what became of its rows. Vote events
/// carry their row's `vote_id` as idempotency key, so with the file (matched by its SHA-256) an
/// auditor can tie every imported vote to its row.
public struct ImportRecord: Sendable, Equatable {
    /// The file's name as the importer gave it (a path is cut to its last component).
    public var file: String
    public var election: ElectionID
    public var bytes: UInt64
    /// SHA-256 of the file's bytes as the daemon received them.
    public var sha256: Digest32
    /// Data rows read (the header and blank lines are not rows).
    public var rows: UInt64
    public var accepted: UInt64
    /// Rows whose `vote_id` was already in the ledger with the same content.
    public var alreadyPresent: UInt64
    /// Refused rows by reason code, in code order.
    public var refused: [ReasonCount]
    /// The first and last sequence numbers of the votes this import appended; 0 when none.
    public var firstSeq: UInt64
    public var lastSeq: UInt64

    public struct ReasonCount: Sendable, Equatable {
        public var reason: String
        public var count: UInt64
        public init(reason: String, count: UInt64) {
            self.reason = reason
            self.count = count
        }
    }

    public init(file: String, election: ElectionID, bytes: UInt64, sha256: Digest32, rows: UInt64, accepted: UInt64,
                alreadyPresent: UInt64, refused: [ReasonCount], firstSeq: UInt64, lastSeq: UInt64) {
        self.file = file
        self.election = election
        self.bytes = bytes
        self.sha256 = sha256
        self.rows = rows
        self.accepted = accepted
        self.alreadyPresent = alreadyPresent
        self.refused = refused
        self.firstSeq = firstSeq
        self.lastSeq = lastSeq
    }

    public var refusedRows: UInt64 { refused.reduce(0) { $0 + $1.count } }

    /// The record must add up, and may only point at events before it.
    func validate(before seq: UInt64) throws(DomainError) {
        try Limits.check(file, "import file name", max: Limits.name)
        guard accepted + alreadyPresent + refusedRows == rows else {
            throw DomainError(.badRequest, "import of '\(file)': \(accepted) accepted + \(alreadyPresent) already present + \(refusedRows) refused is not the \(rows) rows read")
        }
        guard refused.count <= Limits.criteria, refused.allSatisfy({ !$0.reason.isEmpty && $0.reason.utf8.count <= 64 }) else {
            throw DomainError(.badRequest, "import of '\(file)': refusal reasons must be at most \(Limits.criteria) short codes")
        }
        let range = firstSeq == 0 && lastSeq == 0 && accepted == 0 || (1...seq - 1).contains(firstSeq) && (firstSeq...seq - 1).contains(lastSeq)
        guard range else {
            throw DomainError(.badRequest, "import of '\(file)': the votes it appended (events \(firstSeq)–\(lastSeq)) must come before it and exist when rows were accepted")
        }
    }
}
