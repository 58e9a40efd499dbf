public import BallotDomain

// What a write answers: the event it recorded, or the checkpoint it signed.

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
