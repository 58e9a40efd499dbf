public import BallotDomain

/// The result of an op, as the daemon writes it (`json`) and a client reads it back
/// (`init(json:)`): one type for both sides. docs/protocol.md shows each. The election
/// documents (`tally`, `ranking`, `jury`, `election.get`) are the domain's projections and
/// stay `JSONValue`: their form is docs/projections.md's, stored and compared byte for byte.
public protocol OpResult: Sendable, Equatable {
    init(json: JSONValue) throws(ProtocolError)
    var json: JSONValue { get }
}

/// Reads a result's members; each failure names the result and the member.
struct Members {
    let what: String
    let value: JSONValue

    init(_ what: String, _ value: JSONValue) throws(ProtocolError) {
        guard case .object = value else { throw ProtocolError(.internal, "\(what): the result is not an object: \(value.text.prefix(200))") }
        self.what = what
        self.value = value
    }

    func lacks(_ key: String, _ kind: String) -> ProtocolError {
        ProtocolError(.internal, "\(what): the result's '\(key)' is missing or not \(kind): \(value.text.prefix(300))")
    }

    func has(_ key: String) -> Bool { value[key].map { $0 != .null } ?? false }
    func any(_ key: String) -> JSONValue { value[key] ?? .null }

    func int(_ key: String) throws(ProtocolError) -> Int64 {
        guard let i = value[key]?.intValue else { throw lacks(key, "an integer") }
        return i
    }
    func uint(_ key: String) throws(ProtocolError) -> UInt64 {
        guard let i = value[key]?.intValue, i >= 0 else { throw lacks(key, "a count or sequence number") }
        return UInt64(i)
    }
    func string(_ key: String) throws(ProtocolError) -> String {
        guard let s = value[key]?.stringValue else { throw lacks(key, "a string") }
        return s
    }
    func bool(_ key: String) throws(ProtocolError) -> Bool {
        guard let b = value[key]?.boolValue else { throw lacks(key, "true or false") }
        return b
    }
    func digest(_ key: String) throws(ProtocolError) -> Digest32 {
        guard let s = value[key]?.stringValue, let d = Digest32(hex: s) else { throw lacks(key, "a SHA-256 in hex") }
        return d
    }
    func digests(_ key: String) throws(ProtocolError) -> [Digest32] {
        guard let items = value[key]?.arrayValue else { throw lacks(key, "an array") }
        var out: [Digest32] = []
        for item in items {
            guard let s = item.stringValue, let d = Digest32(hex: s) else { throw lacks(key, "an array of SHA-256s in hex") }
            out.append(d)
        }
        return out
    }
    func array(_ key: String) throws(ProtocolError) -> [JSONValue] {
        guard let items = value[key]?.arrayValue else { throw lacks(key, "an array") }
        return items
    }
    func optional<T>(_ key: String, _ read: (String) throws(ProtocolError) -> T) throws(ProtocolError) -> T? {
        has(key) ? try read(key) : nil
    }
}

extension Optional where Wrapped == UInt64 {
    var json: JSONValue { map { .uint($0) } ?? .null }
}
extension Optional where Wrapped == String {
    var json: JSONValue { map { .string($0) } ?? .null }
}
extension Optional where Wrapped == Digest32 {
    var json: JSONValue { map { .string($0.hex) } ?? .null }
}

// MARK: Every peer

/// `hello`: the protocol and server, who the daemon takes the peer to be, and what it may ask.
public struct HelloResult: OpResult {
    public var protocolVersion: Int64
    public var serverVersion: String
    /// nil: the peer has no role and may only say `hello`.
    public var role: String?
    /// nil: a TLS client whose certificate `access.tls_clients` does not list.
    public var uid: UInt32?
    /// On the TLS listener: the SHA-256 of the peer's certificate (hex).
    public var certificateSHA256: String?
    /// Names, not `OpName`s: a newer daemon may know more.
    public var ops: [String]
    public var checkpointPublicKey: String?

    public init(protocolVersion: Int64, serverVersion: String, role: String?, uid: UInt32?, certificateSHA256: String?, ops: [String], checkpointPublicKey: String?) {
        self.protocolVersion = protocolVersion
        self.serverVersion = serverVersion
        self.role = role
        self.uid = uid
        self.certificateSHA256 = certificateSHA256
        self.ops = ops
        self.checkpointPublicKey = checkpointPublicKey
    }

    public var json: JSONValue {
        .object([("protocol_version", .int(protocolVersion)), ("server_version", .string(serverVersion)), ("role", role.json),
                 ("uid", uid.map { .int(Int64($0)) } ?? .null), ("certificate_sha256", certificateSHA256.json),
                 ("ops", .array(ops.map(JSONValue.string))), ("checkpoint_public_key", checkpointPublicKey.json)])
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let m = try Members("hello", json)
        let uid = try m.optional("uid", m.uint)
        guard uid.map({ $0 <= UInt32.max }) ?? true else { throw m.lacks("uid", "a uid") }
        var ops: [String] = []
        for op in try m.array("ops") {
            guard let name = op.stringValue else { throw m.lacks("ops", "an array of names") }
            ops.append(name)
        }
        self.init(protocolVersion: try m.int("protocol_version"), serverVersion: try m.string("server_version"),
                  role: try m.optional("role", m.string), uid: uid.map { UInt32($0) },
                  certificateSHA256: try m.optional("certificate_sha256", m.string), ops: ops,
                  checkpointPublicKey: try m.optional("checkpoint_public_key", m.string))
    }
}

/// `status`: the ledger's size and root, its elections, and how its verification, witnessing
/// and (on a follower) replication stand.
public struct StatusResult: OpResult {
    public var ledgerID: String
    public var ledgerSize: UInt64
    public var merkleRoot: Digest32
    public var elections: Int64
    public var verification: VerificationReport
    /// The witnesses and the newest witnessed checkpoint; `.null` without a witness policy.
    public var witnessing: JSONValue
    /// On a follower: how it follows its primary.
    public var follower: FollowerReport?

    public init(ledgerID: String, ledgerSize: UInt64, merkleRoot: Digest32, elections: Int64, verification: VerificationReport,
                witnessing: JSONValue, follower: FollowerReport?) {
        self.ledgerID = ledgerID
        self.ledgerSize = ledgerSize
        self.merkleRoot = merkleRoot
        self.elections = elections
        self.verification = verification
        self.witnessing = witnessing
        self.follower = follower
    }

    public var json: JSONValue {
        .object([("ledger_id", .string(ledgerID)), ("ledger_size", .uint(ledgerSize)), ("merkle_root", .string(merkleRoot.hex)),
                 ("elections", .int(elections)), ("verification", verification.json), ("witnessing", witnessing),
                 ("follower", follower?.json ?? .null)])
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let m = try Members("status", json)
        self.init(ledgerID: try m.string("ledger_id"), ledgerSize: try m.uint("ledger_size"), merkleRoot: try m.digest("merkle_root"),
                  elections: try m.int("elections"), verification: try VerificationReport(json: m.any("verification")),
                  witnessing: m.any("witnessing"), follower: m.has("follower") ? try FollowerReport(json: m.any("follower")) : nil)
    }
}

/// `status.verification`: the daemon's own check of its ledger (docs/operations.md).
public struct VerificationReport: OpResult {
    /// off, running, verified or failed; a newer daemon may report another.
    public struct State: RawRepresentable, Hashable, Sendable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public static let off = State(rawValue: "off"), running = State(rawValue: "running")
        public static let verified = State(rawValue: "verified"), failed = State(rawValue: "failed")
    }
    /// The `verify` setting: how much of the ledger is checked at start.
    public var mode: String
    public var state: State
    /// Verified or failed: how many events were checked, and from and through which.
    public var events: UInt64?
    public var from: UInt64?
    public var through: UInt64?
    public var findings: Int64?
    public var firstFinding: String?

    public init(mode: String, state: State, events: UInt64? = nil, from: UInt64? = nil, through: UInt64? = nil, findings: Int64? = nil,
                firstFinding: String? = nil) {
        self.mode = mode
        self.state = state
        self.events = events
        self.from = from
        self.through = through
        self.findings = findings
        self.firstFinding = firstFinding
    }

    public var json: JSONValue {
        var fields: [(String, JSONValue)] = [("mode", .string(mode)), ("state", .string(state.rawValue))]
        if let events { fields.append(("events", .uint(events))) }
        if let from { fields.append(("from", .uint(from))) }
        if let through { fields.append(("through", .uint(through))) }
        if let findings { fields.append(("findings", .int(findings))) }
        if let firstFinding { fields.append(("first_finding", .string(firstFinding))) }
        return .object(fields)
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let m = try Members("status.verification", json)
        self.init(mode: try m.string("mode"), state: State(rawValue: try m.string("state")), events: try m.optional("events", m.uint), from: try m.optional("from", m.uint),
                  through: try m.optional("through", m.uint), findings: try m.optional("findings", m.int),
                  firstFinding: try m.optional("first_finding", m.string))
    }
}

/// `status.follower`: where a follower stands against its primary (docs/operations.md, "Followers").
public struct FollowerReport: OpResult {
    public var primary: String
    /// connecting, following, paused, waiting or stopped.
    public var state: String
    public var primaryLedgerSize: UInt64?
    public var lagEvents: UInt64?
    /// The size the newest stored checkpoint signs.
    public var checkpointSize: UInt64?
    public var secondsSinceContact: Double?
    public var stoppedBecause: String?
    public var lastError: String?

    public init(primary: String, state: String, primaryLedgerSize: UInt64?, lagEvents: UInt64?, checkpointSize: UInt64?,
                secondsSinceContact: Double?, stoppedBecause: String?, lastError: String?) {
        self.primary = primary
        self.state = state
        self.primaryLedgerSize = primaryLedgerSize
        self.lagEvents = lagEvents
        self.checkpointSize = checkpointSize
        self.secondsSinceContact = secondsSinceContact
        self.stoppedBecause = stoppedBecause
        self.lastError = lastError
    }

    public var json: JSONValue {
        .object([("primary", .string(primary)), ("state", .string(state)), ("primary_ledger_size", primaryLedgerSize.json),
                 ("lag_events", lagEvents.json), ("checkpoint_size", checkpointSize.json),
                 ("seconds_since_contact", secondsSinceContact.map { .double($0) } ?? .null),
                 ("stopped_because", stoppedBecause.json), ("last_error", lastError.json)])
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let m = try Members("status.follower", json)
        var seconds: Double?
        if m.has("seconds_since_contact") {
            guard let s = m.any("seconds_since_contact").doubleValue else { throw m.lacks("seconds_since_contact", "a number") }
            seconds = s
        }
        self.init(primary: try m.string("primary"), state: try m.string("state"), primaryLedgerSize: try m.optional("primary_ledger_size", m.uint),
                  lagEvents: try m.optional("lag_events", m.uint), checkpointSize: try m.optional("checkpoint_size", m.uint),
                  secondsSinceContact: seconds, stoppedBecause: try m.optional("stopped_because", m.string),
                  lastError: try m.optional("last_error", m.string))
    }
}

/// `metrics`: the daemon's metrics in the Prometheus text format.
public struct MetricsResult: OpResult {
    public var format: String
    public var text: String

    public init(format: String = "prometheus-text-0.0.4", text: String) {
        self.format = format
        self.text = text
    }

    public var json: JSONValue { .object([("format", .string(format)), ("text", .string(text))]) }

    public init(json: JSONValue) throws(ProtocolError) {
        let m = try Members("metrics", json)
        self.init(format: try m.string("format"), text: try m.string("text"))
    }
}

// MARK: Writes

/// A write's result: the event's sequence number and leaf hash, and whether its idempotency
/// key had already recorded it. A certification that waited for witnesses adds the witnessed
/// checkpoint.
public struct WriteReceipt: OpResult {
    public var seq: UInt64
    public var leafHash: Digest32
    /// The idempotency key was seen before: this is the event it recorded then; nothing new.
    public var repeated: Bool
    public var witnessedCheckpointSeq: UInt64?
    public var witnessedNote: String?

    public init(seq: UInt64, leafHash: Digest32, repeated: Bool, witnessedCheckpointSeq: UInt64? = nil, witnessedNote: String? = nil) {
        self.seq = seq
        self.leafHash = leafHash
        self.repeated = repeated
        self.witnessedCheckpointSeq = witnessedCheckpointSeq
        self.witnessedNote = witnessedNote
    }

    public var json: JSONValue {
        var fields: [(String, JSONValue)] = [("seq", .uint(seq)), ("leaf_hash", .string(leafHash.hex)), ("repeated", .bool(repeated))]
        if let witnessedCheckpointSeq { fields.append(("witnessed_checkpoint_seq", .uint(witnessedCheckpointSeq))) }
        if let witnessedNote { fields.append(("witnessed_note", .string(witnessedNote))) }
        return .object(fields)
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let m = try Members("write", json)
        self.init(seq: try m.uint("seq"), leafHash: try m.digest("leaf_hash"), repeated: try m.bool("repeated"),
                  witnessedCheckpointSeq: try m.optional("witnessed_checkpoint_seq", m.uint), witnessedNote: try m.optional("witnessed_note", m.string))
    }
}

/// `election.define`: the receipt of each event of the set-up (the election, its nominees, its jurors).
public struct DefineResult: OpResult {
    public var events: [WriteReceipt]

    public init(events: [WriteReceipt]) { self.events = events }

    public var json: JSONValue { .object([("events", .array(events.map(\.json)))]) }

    public init(json: JSONValue) throws(ProtocolError) {
        let m = try Members("election.define", json)
        var events: [WriteReceipt] = []
        for event in try m.array("events") { events.append(try WriteReceipt(json: event)) }
        self.init(events: events)
    }
}

/// `checkpoint`: the checkpoint just signed and recorded, and its event.
public struct CheckpointTaken: OpResult {
    public var seq: UInt64
    public var leafHash: Digest32
    /// The checkpoint as docs/protocol.md shows it (`EventJSON.checkpoint`).
    public var checkpoint: JSONValue

    public init(seq: UInt64, leafHash: Digest32, checkpoint: JSONValue) {
        self.seq = seq
        self.leafHash = leafHash
        self.checkpoint = checkpoint
    }

    public var json: JSONValue { .object([("seq", .uint(seq)), ("leaf_hash", .string(leafHash.hex)), ("checkpoint", checkpoint)]) }

    public init(json: JSONValue) throws(ProtocolError) {
        let m = try Members("checkpoint", json)
        self.init(seq: try m.uint("seq"), leafHash: try m.digest("leaf_hash"), checkpoint: m.any("checkpoint"))
    }
}

/// `checkpoint` with `latest`: the last checkpoint recorded (none yet: nil), and the head now.
public struct LatestCheckpoint: OpResult {
    public var seq: UInt64?
    public var checkpoint: JSONValue?
    public var ledgerSize: UInt64
    public var merkleRoot: Digest32

    public init(seq: UInt64?, checkpoint: JSONValue?, ledgerSize: UInt64, merkleRoot: Digest32) {
        self.seq = seq
        self.checkpoint = checkpoint
        self.ledgerSize = ledgerSize
        self.merkleRoot = merkleRoot
    }

    public var json: JSONValue {
        .object([("seq", seq.json), ("checkpoint", checkpoint ?? .null),
                 ("head", .object([("ledger_size", .uint(ledgerSize)), ("merkle_root", .string(merkleRoot.hex))]))])
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let m = try Members("checkpoint", json)
        let head = try Members("checkpoint.head", m.any("head"))
        self.init(seq: try m.optional("seq", m.uint), checkpoint: m.has("checkpoint") ? m.any("checkpoint") : nil,
                  ledgerSize: try head.uint("ledger_size"), merkleRoot: try head.digest("merkle_root"))
    }
}

// MARK: Reads of the ledger

/// `events`: events decoded, as docs/protocol.md shows them.
public struct EventsResult: OpResult {
    public var events: [JSONValue]

    public init(events: [JSONValue]) { self.events = events }

    public var json: JSONValue { .object([("events", .array(events))]) }

    public init(json: JSONValue) throws(ProtocolError) {
        self.init(events: try Members("events", json).array("events"))
    }
}

/// `proof` with `seq`: an inclusion proof of one event in the tree of `size` events (RFC 9162).
public struct InclusionProofResult: OpResult {
    public var seq: UInt64
    public var size: UInt64
    public var leafHash: Digest32
    public var root: Digest32
    public var path: [Digest32]
    /// With `checkpoint`: the checkpoint recorded at that event, whose size the proof is for.
    public var checkpointSeq: UInt64?
    public var checkpoint: JSONValue?

    public init(seq: UInt64, size: UInt64, leafHash: Digest32, root: Digest32, path: [Digest32], checkpointSeq: UInt64? = nil, checkpoint: JSONValue? = nil) {
        self.seq = seq
        self.size = size
        self.leafHash = leafHash
        self.root = root
        self.path = path
        self.checkpointSeq = checkpointSeq
        self.checkpoint = checkpoint
    }

    public var json: JSONValue {
        var fields: [(String, JSONValue)] = [("seq", .uint(seq)), ("size", .uint(size)), ("leaf_hash", .string(leafHash.hex)),
                                             ("root", .string(root.hex)), ("path", .array(path.map { .string($0.hex) }))]
        if let checkpointSeq, let checkpoint {
            fields += [("checkpoint_seq", .uint(checkpointSeq)), ("checkpoint", checkpoint)]
        }
        return .object(fields)
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let m = try Members("proof", json)
        self.init(seq: try m.uint("seq"), size: try m.uint("size"), leafHash: try m.digest("leaf_hash"), root: try m.digest("root"),
                  path: try m.digests("path"), checkpointSeq: try m.optional("checkpoint_seq", m.uint),
                  checkpoint: m.has("checkpoint") ? m.any("checkpoint") : nil)
    }
}

/// `proof` with `old_size`: a consistency proof between two tree sizes (RFC 9162).
public struct ConsistencyProofResult: OpResult {
    public var oldSize: UInt64
    public var newSize: UInt64
    public var oldRoot: Digest32
    public var newRoot: Digest32
    public var path: [Digest32]

    public init(oldSize: UInt64, newSize: UInt64, oldRoot: Digest32, newRoot: Digest32, path: [Digest32]) {
        self.oldSize = oldSize
        self.newSize = newSize
        self.oldRoot = oldRoot
        self.newRoot = newRoot
        self.path = path
    }

    public var json: JSONValue {
        .object([("old_size", .uint(oldSize)), ("new_size", .uint(newSize)), ("old_root", .string(oldRoot.hex)),
                 ("new_root", .string(newRoot.hex)), ("path", .array(path.map { .string($0.hex) }))])
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let m = try Members("proof", json)
        self.init(oldSize: try m.uint("old_size"), newSize: try m.uint("new_size"), oldRoot: try m.digest("old_root"),
                  newRoot: try m.digest("new_root"), path: try m.digests("path"))
    }
}

/// `receipt`: an event's c2sp.org/tlog-proof, against a checkpoint of `checkpointSize` events.
public struct ReceiptResult: OpResult {
    public var seq: UInt64
    public var checkpointSize: UInt64
    /// The receipt file's text, which `ballot-replay receipt` checks offline.
    public var tlogProof: String

    public init(seq: UInt64, checkpointSize: UInt64, tlogProof: String) {
        self.seq = seq
        self.checkpointSize = checkpointSize
        self.tlogProof = tlogProof
    }

    public var json: JSONValue { .object([("seq", .uint(seq)), ("checkpoint_size", .uint(checkpointSize)), ("tlog_proof", .string(tlogProof))]) }

    public init(json: JSONValue) throws(ProtocolError) {
        let m = try Members("receipt", json)
        self.init(seq: try m.uint("seq"), checkpointSize: try m.uint("checkpoint_size"), tlogProof: try m.string("tlog_proof"))
    }
}

/// `backup`: where the copy went, what it holds, and its size on disk.
public struct BackupResult: OpResult {
    public var directory: String
    public var ledgerSize: UInt64
    public var merkleRoot: Digest32
    public var bytes: Int64

    public init(directory: String, ledgerSize: UInt64, merkleRoot: Digest32, bytes: Int64) {
        self.directory = directory
        self.ledgerSize = ledgerSize
        self.merkleRoot = merkleRoot
        self.bytes = bytes
    }

    public var json: JSONValue {
        .object([("directory", .string(directory)), ("ledger_size", .uint(ledgerSize)), ("merkle_root", .string(merkleRoot.hex)), ("bytes", .int(bytes))])
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let m = try Members("backup", json)
        self.init(directory: try m.string("directory"), ledgerSize: try m.uint("ledger_size"), merkleRoot: try m.digest("merkle_root"), bytes: try m.int("bytes"))
    }
}

// MARK: Streams

/// `subscribe`'s reply, before its events: where the stream starts.
public struct SubscriptionStart: OpResult {
    public var from: UInt64

    public init(from: UInt64) { self.from = from }

    public var json: JSONValue { .object([("from", .uint(from))]) }

    public init(json: JSONValue) throws(ProtocolError) { self.init(from: try Members("subscribe", json).uint("from")) }
}

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
