public import BallotDomain
public import BallotCollections

/// The state a writer keeps between starts, as a file (docs/ledger-format.md, "Kept state"):
/// what it covers (the ledger, the event, the root), the layers of its two tables, and the
/// state of every election, then a SHA-256 digest of all of it. The tables themselves are
/// files of their own (`TableLayers`): hash tables, each a header page (with its count of
/// entries) and its slots, and sorted runs (`SortedRun`).
///
///     "BLKEPT04"                       8 bytes, the magic and layout version
///     ledger id                        16 bytes (the ledger's meta 'ledger_id')
///     events covered S                 u64
///     Merkle root over events 1…S      32 bytes
///     the writer's last timestamp      i64 µs
///     idempotency key seed             u64
///     voter table layers               u32 count (1 to 64), then each: u8 kind (0 a table,
///                                      1 a run), u64 generation, u64 slots (a table) or
///                                      entries (a run); the last is a table
///     key index layers                 the same
///     tables synced to disk            u8 (1: written in full, at a clean stop)
///     boot id                          str (the kernel's boot_id when written)
///     the state's last sequence number u64 (S again)
///     last checkpoint                  u8 its event type (12 or 13; 0: none), then u64 seq and
///                                      its payload
///     elections                        u32 count, then each (below)
///     SHA-256 of everything above      32 bytes
///
/// Payloads (a definition, a nomination, a juror, a certified or proposed result, a
/// co-signature, a checkpoint) are the event payloads of the record format, each after a u32
/// length. (Layout 04 added jurors' keys, the result awaiting co-signatures, and whether each
/// score is signed; an older kept state is not read, and the ledger is replayed instead.)
public enum KeptStateCodec {
    static let magic = Array("BLKEPT04".utf8)

    /// What a kept state says of itself, besides the election states.
    public struct Header: Sendable, Equatable {
        public var ledgerID: [UInt8]
        public var events: UInt64
        public var root: MerkleHash
        public var lastTimestamp: Timestamp
        public var keySeed: UInt64
        /// The voter table's layers, oldest first; the last is the table a batch changes.
        public var voterLayers: [LayerRecord]
        /// The idempotency index's layers, likewise.
        public var keyLayers: [LayerRecord]
        /// The tables were written to disk in full (`msync`) and not changed since.
        public var synced: Bool
        public var bootID: String

        public init(ledgerID: [UInt8], events: UInt64, root: MerkleHash, lastTimestamp: Timestamp, keySeed: UInt64,
                    voterLayers: [LayerRecord], keyLayers: [LayerRecord], synced: Bool, bootID: String) {
            self.ledgerID = ledgerID
            self.events = events
            self.root = root
            self.lastTimestamp = lastTimestamp
            self.keySeed = keySeed
            self.voterLayers = voterLayers
            self.keyLayers = keyLayers
            self.synced = synced
            self.bootID = bootID
        }
    }

    /// Why a kept state cannot be read: damaged, cut short, or of a layout this build does not know.
    public struct Unreadable: Error, Sendable, CustomStringConvertible {
        public let reason: String
        public var description: String { reason }
    }

    public static func encode(_ header: Header, _ image: LedgerState.Image) -> [UInt8] {
        var w = ByteWriter(capacity: 4096)
        magic.withUnsafeBytes { w.raw($0) }
        precondition(header.ledgerID.count == 16, "a ledger id is 16 bytes")
        header.ledgerID.withUnsafeBytes { w.raw($0) }
        w.u64(header.events)
        header.root.withBytes { w.raw($0) }
        w.i64(header.lastTimestamp.microseconds)
        w.u64(header.keySeed)
        for layers in [header.voterLayers, header.keyLayers] {
            w.u32(UInt32(layers.count))
            for layer in layers {
                w.u8(layer.kind.rawValue)
                w.u64(layer.generation)
                w.u64(UInt64(layer.size))
            }
        }
        w.bool(header.synced)
        w.str(header.bootID)
        w.u64(image.lastSeq)
        w.u8(image.lastCheckpoint.map { Event.checkpointSigned($0.checkpoint).kind.rawValue } ?? 0)
        if let at = image.lastCheckpoint {
            w.u64(at.seq)
            payload(.checkpointSigned(at.checkpoint), &w)
        }
        w.u32(UInt32(image.elections.count))
        for e in image.elections { encode(e, &w) }
        let digest = w.bytes.withUnsafeBytes { SHA256Digester.hash($0) }
        digest.withBytes { w.raw($0) }
        return w.bytes
    }

    /// One election: its definition and when; its nominees, jurors, window, jury and result;
    /// its counts, series and scores; the votes invalidated.
    private static func encode(_ e: ElectionState.Image, _ w: inout ByteWriter) {
        payload(.electionDefined(e.definition), &w)
        w.u64(e.definedAt)
        w.u64(e.lastSeq)
        w.u32(UInt32(e.nominees.count))
        for n in e.nominees { payload(.nomineeAdded(election: e.definition.id, nomination: n), &w) }
        w.u32(UInt32(e.jurors.count))
        for j in e.jurors { payload(.jurorAdded(election: e.definition.id, juror: j.id, name: j.name, key: j.key), &w) }
        for t in [e.votingOpenedAt, e.votingClosedAt] {
            w.bool(t != nil)
            w.i64(t?.microseconds ?? 0)
        }
        w.bool(e.juryClosed)
        w.bool(e.certified != nil)
        if let c = e.certified { payload(.resultCertified(c), &w) }
        w.bool(e.proposal != nil)
        if let p = e.proposal {
            w.u64(p.seq)
            payload(.resultProposed(p.result), &w)
        }
        w.u32(UInt32(e.cosignatures.count))
        for c in e.cosignatures {
            payload(.resultCosigned(ResultCosignature(election: e.definition.id, proposal: e.proposal?.seq ?? 0, signature: c)), &w)
        }
        for v in e.votes { w.i64(Int64(v)) }
        w.i64(Int64(e.votesCast))
        w.i64(Int64(e.invalidatedVotes))
        w.u32(UInt32(e.invalidated.count))
        for s in e.invalidated { w.u64(s) }
        w.u32(UInt32(e.series.count))
        for row in e.series {
            w.i64(row.bucket)
            w.u16(UInt16(row.counts.count))
            for c in row.counts { w.i64(Int64(c)) }
        }
        w.u32(UInt32(e.scores.count))
        for s in e.scores {
            w.slug(s.slot.juror)
            w.slug(s.slot.nominee)
            w.slug(s.slot.criterion)
            w.i32(s.score)
            w.u64(s.seq)
            w.bool(s.signed)
        }
    }

    private static func payload(_ event: Event, _ w: inout ByteWriter) {
        let at = w.bytes.count
        w.u32(0)
        PayloadCodec.encode(event, into: &w)
        let length = UInt32(w.bytes.count - at - 4).bigEndian
        withUnsafeBytes(of: length) { for i in 0..<4 { w.bytes[at + i] = $0[i] } }
    }

    public static func decode(_ bytes: [UInt8]) throws(Unreadable) -> (Header, LedgerState.Image) {
        guard bytes.count >= magic.count + 32, Array(bytes.prefix(magic.count)) == magic else {
            throw Unreadable(reason: "it is not a kept state of this layout (it does not begin with \"BLKEPT04\")")
        }
        let body = bytes.count - 32
        let digest = bytes.withUnsafeBytes { SHA256Digester.hash(UnsafeRawBufferPointer(rebasing: $0[..<body])) }
        let stored = bytes.withUnsafeBytes { MerkleHash(UnsafeRawBufferPointer(rebasing: $0[body...])) }
        guard digest == stored else {
            throw Unreadable(reason: "its digest does not match its contents (SHA-256 \(digest.hex), stored \(stored.hex))")
        }
        do {
            return try bytes.withUnsafeBytes { raw in
                var r = ByteReader(UnsafeRawBufferPointer(rebasing: raw[..<body]), offset: magic.count)
                let header = Header(
                    ledgerID: Array(try r.bytes(16, "ledger id")), events: try r.u64("events covered"),
                    root: MerkleHash(try r.bytes(32, "root")), lastTimestamp: Timestamp(microseconds: try r.i64("last timestamp")),
                    keySeed: try r.u64("key seed"), voterLayers: try layers(&r, "voter table"),
                    keyLayers: try layers(&r, "key index"), synced: try r.bool("synced"),
                    bootID: try r.str("boot id"))
                let lastSeq = try r.u64("last seq")
                var checkpoint: LedgerState.Image.CheckpointAt?
                let type = try r.u8("the last checkpoint's event type")
                if type != 0 {
                    guard let kind = EventKind(rawValue: type), kind == .checkpointSigned || kind == .checkpointNoted else {
                        throw failure(r, "a last checkpoint of event type \(type)")
                    }
                    let seq = try r.u64("checkpoint seq")
                    guard case .checkpointSigned(let c) = try payload(kind, &r) else { throw failure(r, "checkpoint") }
                    checkpoint = .init(seq: seq, checkpoint: c)
                }
                let elections = try (0..<items(&r, "election count", of: 64)).map { i in try election(&r, UInt32(i)) }
                guard r.remaining == 0 else { throw failure(r, "\(r.remaining) bytes after the last election") }
                return (header, LedgerState.Image(lastSeq: lastSeq, lastCheckpoint: checkpoint, elections: elections))
            }
        } catch {
            throw Unreadable(reason: "it does not decode: \(error)")
        }
    }

    private static func election(_ r: inout ByteReader, _ i: UInt32) throws -> ElectionState.Image {
        guard case .electionDefined(let definition) = try payload(.electionDefined, &r) else { throw failure(r, "election \(i)") }
        let definedAt = try r.u64("defined at"), lastSeq = try r.u64("last seq")
        let nominees = try (0..<items(&r, "nominee count", of: 8)).map { _ throws -> Nomination in
            guard case .nomineeAdded(_, let n) = try payload(.nomineeAdded, &r) else { throw failure(r, "nominee") }
            return n
        }
        let jurors = try (0..<items(&r, "juror count", of: 8)).map { _ throws -> ElectionState.Image.Juror in
            guard case .jurorAdded(_, let id, let name, let key) = try payload(.jurorAdded, &r) else { throw failure(r, "juror") }
            return ElectionState.Image.Juror(id: id, name: name, key: key)
        }
        var window: [Timestamp?] = []
        for field in ["voting opened at", "voting closed at"] {
            let present = try r.bool(field)
            let t = Timestamp(microseconds: try r.i64(field))
            window.append(present ? t : nil)
        }
        let juryClosed = try r.bool("jury closed")
        var certified: CertifiedResult?
        if try r.bool("certified") {
            guard case .resultCertified(let c) = try payload(.resultCertified, &r) else { throw failure(r, "certified result") }
            certified = c
        }
        var proposal: ElectionState.Image.Proposal?
        if try r.bool("proposal") {
            let seq = try r.u64("proposal seq")
            guard case .resultProposed(let p) = try payload(.resultProposed, &r) else { throw failure(r, "proposal") }
            proposal = ElectionState.Image.Proposal(seq: seq, result: p)
        }
        let cosignatures = try (0..<items(&r, "co-signature count", of: 8)).map { _ throws -> JurorSignature in
            guard case .resultCosigned(let c) = try payload(.resultCosigned, &r) else { throw failure(r, "co-signature") }
            return c.signature
        }
        let votes = try nominees.map { _ in Int(try r.i64("votes")) }
        let votesCast = Int(try r.i64("votes cast")), invalidatedVotes = Int(try r.i64("invalidated votes"))
        let invalidated = try (0..<items(&r, "invalidated count", of: 8)).map { _ in try r.u64("invalidated vote") }
        let series = try (0..<items(&r, "series rows", of: 10)).map { _ in
            let bucket = try r.i64("bucket")
            return ElectionState.Image.SeriesRow(bucket: bucket, counts: try (0..<r.u16("row length")).map { _ in Int(try r.i64("count")) })
        }
        let scores = try (0..<items(&r, "score count", of: 19)).map { _ in
            ElectionState.Image.Score(slot: ScoreSlot(juror: try r.slug("juror"), nominee: try r.slug("nominee"), criterion: try r.slug("criterion")),
                                      score: try r.i32("score"), seq: try r.u64("score seq"), signed: try r.bool("score signed"))
        }
        return ElectionState.Image(definition: definition, definedAt: definedAt, lastSeq: lastSeq, nominees: nominees, jurors: jurors,
                                   votingOpenedAt: window[0], votingClosedAt: window[1], juryClosed: juryClosed, certified: certified,
                                   proposal: proposal, cosignatures: cosignatures, votes: votes, votesCast: votesCast, invalidatedVotes: invalidatedVotes, invalidated: invalidated,
                                   series: series, scores: scores)
    }

    private static func payload(_ kind: EventKind, _ r: inout ByteReader) throws -> Event {
        let length = Int(try r.u32("\(kind) length"))
        var sub = ByteReader(try r.bytes(length, "\(kind) payload"))
        let event = try PayloadCodec.decode(kind, &sub)
        guard sub.remaining == 0 else { throw failure(r, "\(sub.remaining) bytes after a \(kind) payload") }
        return event
    }

    /// A table's slot count: a power of two, and at most 2^36 (a terabyte of voters).
    private static func count(_ r: inout ByteReader, _ field: String) throws -> Int {
        let n = try r.u64(field)
        guard n <= 1 << 36, n & (n &- 1) == 0 else { throw failure(r, "\(field) is \(n)") }
        return Int(n)
    }

    /// A table's layers: a few, each a table of a power of two of slots or a run of at most
    /// 2^31 entries, and the last a table.
    private static func layers(_ r: inout ByteReader, _ table: String) throws -> [LayerRecord] {
        let n = try r.u32("\(table) layers")
        guard (1...UInt32(TableLayers<TaggedKeySet>.mostLayers)).contains(n) else { throw failure(r, "\(table) has \(n) layers") }
        return try (0..<n).map { i in
            let kind = try r.u8("\(table) layer \(i) kind")
            let generation = try r.u64("\(table) layer \(i) generation")
            switch LayerRecord.Kind(rawValue: kind) {
            case .table?:
                return LayerRecord(kind: .table, generation: generation, size: try count(&r, "\(table) layer \(i) slots"))
            case .run? where i < n - 1:
                let entries = try r.u64("\(table) layer \(i) entries")
                guard entries <= 1 << 31 else { throw failure(r, "\(table) layer \(i) has \(entries) entries") }
                return LayerRecord(kind: .run, generation: generation, size: Int(entries))
            default:
                throw failure(r, "\(table) layer \(i) is of kind \(kind)\(i == n - 1 ? ", and the last must be a table (0)" : "")")
            }
        }
    }

    /// A count of items of at least `bytes` each: no more than the bytes left can hold, so that
    /// a damaged count never asks for more memory than the file has.
    private static func items(_ r: inout ByteReader, _ field: String, of bytes: Int) throws -> Int {
        let n = Int(try r.u32(field))
        guard n * bytes <= r.remaining else { throw failure(r, "\(field) is \(n), more than the \(r.remaining) bytes left hold") }
        return n
    }

    private static func failure(_ r: ByteReader, _ what: String) -> ByteReader.Failure {
        ByteReader.Failure(offset: r.offset, what: what)
    }
}
