public import BallotDomain

// What an import answers: its go-ahead, the lines while the file streams in, and its summary.

/// `import`'s first reply, the go-ahead: send the file's `send` bytes now.
public struct ImportGoAhead: OpResult {
    public var send: UInt64
    /// "csv" or "ndjson": as asked, or as guessed from the file's name.
    public var format: String
    public var dryRun: Bool

    public init(send: UInt64, format: String, dryRun: Bool) {
        self.send = send
        self.format = format
        self.dryRun = dryRun
    }

    public var json: JSONValue { .object([("send", .uint(send)), ("format", .string(format)), ("dry_run", .bool(dryRun))]) }

    public init(json: JSONValue) throws(ProtocolError) {
        let m = try Members("import", json)
        self.init(send: try m.uint("send"), format: try m.string("format"), dryRun: try m.bool("dry_run"))
    }
}

/// `import`'s last reply: what became of every row, and the `import.recorded` event.
public struct ImportSummary: OpResult {
    public var file: String
    public var election: String?
    public var dryRun: Bool
    public var bytes: UInt64
    public var rows: UInt64
    public var accepted: UInt64
    public var alreadyPresent: UInt64
    /// Rows refused, by reason.
    public var refused: [String: UInt64]
    public var firstSeq: UInt64
    public var lastSeq: UInt64
    public var sha256: Digest32
    /// The `import.recorded` event (none on a dry run).
    public var importSeq: UInt64?
    public var leafHash: Digest32?

    public init(file: String, election: String?, dryRun: Bool, bytes: UInt64, rows: UInt64, accepted: UInt64, alreadyPresent: UInt64,
                refused: [String: UInt64], firstSeq: UInt64, lastSeq: UInt64, sha256: Digest32, importSeq: UInt64?, leafHash: Digest32?) {
        self.file = file
        self.election = election
        self.dryRun = dryRun
        self.bytes = bytes
        self.rows = rows
        self.accepted = accepted
        self.alreadyPresent = alreadyPresent
        self.refused = refused
        self.firstSeq = firstSeq
        self.lastSeq = lastSeq
        self.sha256 = sha256
        self.importSeq = importSeq
        self.leafHash = leafHash
    }

    public var refusedRows: UInt64 { refused.values.reduce(0, +) }

    public var json: JSONValue {
        .object([("file", .string(file)), ("election", election.json), ("dry_run", .bool(dryRun)), ("bytes", .uint(bytes)),
                 ("rows", .uint(rows)), ("accepted", .uint(accepted)), ("already_present", .uint(alreadyPresent)),
                 ("refused", .object(refused.sorted { $0.key < $1.key }.map { ($0.key, .uint($0.value)) })),
                 ("first_seq", .uint(firstSeq)), ("last_seq", .uint(lastSeq)), ("sha256", .string(sha256.hex)),
                 ("import_seq", importSeq.json), ("leaf_hash", leafHash.json)])
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let m = try Members("import", json)
        guard case .object(let members)? = json["refused"] else { throw m.lacks("refused", "an object of counts") }
        var refused: [String: UInt64] = [:]
        for (reason, count) in members {
            guard let n = count.intValue, n >= 0 else { throw m.lacks("refused", "an object of counts") }
            refused[reason] = UInt64(n)
        }
        self.init(file: try m.string("file"), election: try m.optional("election", m.string), dryRun: try m.bool("dry_run"),
                  bytes: try m.uint("bytes"), rows: try m.uint("rows"), accepted: try m.uint("accepted"),
                  alreadyPresent: try m.uint("already_present"), refused: refused, firstSeq: try m.uint("first_seq"),
                  lastSeq: try m.uint("last_seq"), sha256: try m.digest("sha256"), importSeq: try m.optional("import_seq", m.uint),
                  leafHash: try m.optional("leaf_hash", m.digest))
    }
}

/// The lines of an import before its summary: a refused row, and progress now and then. Each
/// is `{"id": …, "<key>": {…}}`.
public enum ImportLine: Sendable, Equatable {
    case refused(ImportRefusedRow)
    case progress(ImportProgress)

    /// The line, newline included.
    public func bytes(id: JSONValue) -> [UInt8] {
        switch self {
        case .refused(let row): Reply.line(id: id, key: "refused", row.json)
        case .progress(let progress): Reply.line(id: id, key: "progress", progress.json)
        }
    }

    /// Reads a streamed line; nil when it is neither.
    public init?(_ line: JSONValue) throws(ProtocolError) {
        if let row = line["refused"] {
            self = .refused(try ImportRefusedRow(json: row))
        } else if let progress = line["progress"] {
            self = .progress(try ImportProgress(json: progress))
        } else {
            return nil
        }
    }
}

/// A row an import refused: where it is, its vote id, and why (docs/import.md).
public struct ImportRefusedRow: OpResult {
    public var line: Int64
    public var voteID: String
    public var reason: String
    public var message: String

    public init(line: Int64, voteID: String, reason: String, message: String) {
        self.line = line
        self.voteID = voteID
        self.reason = reason
        self.message = message
    }

    public var json: JSONValue {
        .object([("line", .int(line)), ("vote_id", .string(voteID)), ("reason", .string(reason)), ("message", .string(message))])
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let m = try Members("import.refused", json)
        self.init(line: try m.int("line"), voteID: try m.string("vote_id"), reason: try m.string("reason"), message: try m.string("message"))
    }
}

/// How far an import has come.
public struct ImportProgress: OpResult {
    public var bytes: UInt64
    public var size: UInt64
    public var rows: UInt64
    public var accepted: UInt64
    public var alreadyPresent: UInt64
    public var refused: UInt64

    public init(bytes: UInt64, size: UInt64, rows: UInt64, accepted: UInt64, alreadyPresent: UInt64, refused: UInt64) {
        self.bytes = bytes
        self.size = size
        self.rows = rows
        self.accepted = accepted
        self.alreadyPresent = alreadyPresent
        self.refused = refused
    }

    public var json: JSONValue {
        .object([("bytes", .uint(bytes)), ("size", .uint(size)), ("rows", .uint(rows)), ("accepted", .uint(accepted)),
                 ("already_present", .uint(alreadyPresent)), ("refused", .uint(refused))])
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let m = try Members("import.progress", json)
        self.init(bytes: try m.uint("bytes"), size: try m.uint("size"), rows: try m.uint("rows"), accepted: try m.uint("accepted"),
                  alreadyPresent: try m.uint("already_present"), refused: try m.uint("refused"))
    }
}
