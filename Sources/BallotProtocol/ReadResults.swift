public import BallotDomain

// What reads of the ledger answer: events, proofs, receipts, a backup, and where a subscription starts.

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

/// `subscribe`'s reply, before its events: where the stream starts.
public struct SubscriptionStart: OpResult {
    public var from: UInt64

    public init(from: UInt64) { self.from = from }

    public var json: JSONValue { .object([("from", .uint(from))]) }

    public init(json: JSONValue) throws(ProtocolError) { self.init(from: try Members("subscribe", json).uint("from")) }
}
