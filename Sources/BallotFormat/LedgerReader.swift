public import BallotStore
public import BallotDomain
public import BallotCollections

/// The handles of a ledger's databases, opened once.
package struct LedgerDatabases: Sendable {
    package let events: Database
    package let merkle: Database
    package let projections: Database
    package let series: Database
    package let meta: Database

    package init(_ env: Environment) throws {
        let create = !env.options.readOnly
        events = try env.openDatabase(LedgerKeys.events, create: create)
        merkle = try env.openDatabase(LedgerKeys.merkle, create: create)
        projections = try env.openDatabase(LedgerKeys.projections, create: create)
        series = try env.openDatabase(LedgerKeys.series, create: create)
        meta = try env.openDatabase(LedgerKeys.meta, create: create)
    }
}

/// Read access to a ledger, safe from any thread. Each call is one short read transaction, except
/// `forEachRecord`, which takes a fresh one every `chunk` records so that a long scan never pins
/// an old snapshot.
public struct LedgerReader: Sendable {
    package let env: Environment
    package let dbs: LedgerDatabases

    package init(env: Environment, dbs: LedgerDatabases) {
        self.env = env
        self.dbs = dbs
    }

    /// Opens the ledger at `path` read-only, for auditors: nothing is created or written (but
    /// LMDB's reader table in `lock.mdb`), and a daemon may keep writing meanwhile. The
    /// environment stays open for the life of the process.
    public static func openReadOnly(path: String) throws -> LedgerReader {
        let env: Environment
        let dbs: LedgerDatabases
        do {
            env = try Environment(path: path, options: EnvironmentOptions(mapSize: 1 << 20, readOnly: true))
            dbs = try LedgerDatabases(env)
        } catch let error as StoreError {
            throw LedgerError.store(error)
        }
        let stored = try env.read { txn in try txn.value(forKey: Array("format".utf8), in: dbs.meta) }
        guard stored == [RecordCodec.formatVersion] else {
            throw LedgerError.unsupportedFormat(found: stored?.first ?? 0, supported: RecordCodec.formatVersion, at: "the ledger at \(path)")
        }
        return LedgerReader(env: env, dbs: dbs)
    }

    /// The ledger's id, its meta 'ledger_id' (16 bytes; zeros for a ledger from before ids,
    /// which no election with jurors' signatures is: their statements name it).
    public func ledgerID() throws -> [UInt8] {
        let stored = try env.read { txn in try txn.value(forKey: Array("ledger_id".utf8), in: dbs.meta) }
        guard let stored, stored.count == 16 else { return [UInt8](repeating: 0, count: 16) }
        return stored
    }

    /// The number of events (the sequence number of the last one).
    public func size() throws -> UInt64 {
        try env.read { txn in try Self.size(in: txn, dbs) }
    }

    /// The event at `seq`, decoded; nil past the end.
    public func record(_ seq: UInt64) throws -> RecordedEvent? {
        try env.read { txn in try Self.record(seq, in: txn, dbs) }
    }

    /// The stored bytes of the event at `seq`.
    public func rawRecord(_ seq: UInt64) throws -> [UInt8]? {
        try env.read { txn in try txn.value(forKey: LedgerKeys.sequence(seq), in: dbs.events) }
    }

    /// The leaf hash of the event at `seq` (SHA-256 of 0x00 and its stored bytes), or nil past the end.
    public func leafHash(_ seq: UInt64) throws -> MerkleHash? {
        guard seq >= 1 else { return nil }
        return try env.read { txn in
            try LedgerKeys.sequence(seq).withUnsafeBytes { k in
                try txn.withValue(forKey: k, in: dbs.events) { MerkleHash.leaf($0) }
            }
        }
    }

    /// The Merkle root of the first `size` events (all of them when nil), and that size.
    public func root(size: UInt64? = nil) throws -> (size: UInt64, root: MerkleHash) {
        try env.read { txn in
            let stored = try Self.size(in: txn, dbs)
            let n = size ?? stored
            guard n <= stored else { throw LedgerError.outOfRange("the ledger holds \(stored) events; there is no tree of size \(n)") }
            return (n, try MerkleTree.root(size: n) { l, i in try Self.node(l, i, in: txn, dbs) })
        }
    }

    /// The frontier (the peaks) of the tree of the first `size` events, read from the stored
    /// nodes: what a writer appends to after a kept state of `size` events.
    public func frontier(size: UInt64) throws -> MerkleFrontier {
        try env.read { txn in
            let stored = try Self.size(in: txn, dbs)
            guard size <= stored else { throw LedgerError.outOfRange("the ledger holds \(stored) events; there is no tree of size \(size)") }
            return try MerkleFrontier(size: size) { l, i in try Self.node(l, i, in: txn, dbs) }
        }
    }

    /// `count` nodes of `level` from `index` on, read in one snapshot: a row of hashes of a
    /// tile (c2sp.org/tlog-tiles), whose level L holds the nodes of level 8·L.
    public func nodes(level: Int, from index: UInt64, count: Int) throws -> [MerkleHash] {
        try env.read { txn in
            let stored = try Self.size(in: txn, dbs)
            guard (index + UInt64(count)) << UInt64(level) <= stored else {
                throw LedgerError.outOfRange("the ledger holds \(stored) events; nodes \(index) to \(index + UInt64(count)) of level \(level) need more")
            }
            return try (0..<UInt64(count)).map { try Self.node(level, index + $0, in: txn, dbs) }
        }
    }

    /// The inclusion proof of event `seq` in the tree of the first `size` events.
    public func inclusionProof(seq: UInt64, size: UInt64) throws -> [MerkleHash] {
        try env.read { txn in
            let stored = try Self.size(in: txn, dbs)
            guard seq >= 1, seq <= size, size <= stored else {
                throw LedgerError.outOfRange("an inclusion proof needs 1 ≤ seq ≤ size ≤ \(stored) (the ledger's size); got seq \(seq), size \(size)")
            }
            return try MerkleTree.inclusionProof(index: seq - 1, size: size) { l, i in try Self.node(l, i, in: txn, dbs) }
        }
    }

    /// The proof that the tree of `newSize` events extends the tree of `oldSize`.
    public func consistencyProof(oldSize: UInt64, newSize: UInt64) throws -> [MerkleHash] {
        try env.read { txn in
            let stored = try Self.size(in: txn, dbs)
            guard oldSize <= newSize, newSize <= stored else {
                throw LedgerError.outOfRange("a consistency proof needs old size ≤ new size ≤ \(stored) (the ledger's size); got \(oldSize) and \(newSize)")
            }
            return try MerkleTree.consistencyProof(oldSize: oldSize, newSize: newSize) { l, i in try Self.node(l, i, in: txn, dbs) }
        }
    }

    /// The checkpoint recorded at event `seq`.
    public func checkpoint(at seq: UInt64) throws -> Checkpoint {
        guard let record = try record(seq) else {
            throw LedgerError.outOfRange("there is no event \(seq)")
        }
        guard case .checkpointSigned(let checkpoint) = record.event else {
            throw LedgerError.outOfRange("event \(seq) is a \(record.event.kind) event, not a checkpoint")
        }
        return checkpoint
    }

    /// A stored projection document (canonical JSON), or nil.
    public func projection(_ election: ElectionID, _ kind: LedgerKeys.ProjectionKind) throws -> [UInt8]? {
        try env.read { txn in try txn.value(forKey: LedgerKeys.projection(election, kind), in: dbs.projections) }
    }

    /// The stored votes-over-time buckets of `election`, oldest first.
    public func series(_ election: ElectionID) throws -> [[UInt8]] {
        let prefix = LedgerKeys.seriesPrefix(election)
        var out: [[UInt8]] = []
        try env.read { txn in
            try txn.forEach(in: dbs.series, from: prefix) { key, value in
                guard key.starts(with: prefix) else { return false }
                out.append(Array(value))
                return true
            }
        }
        return out
    }

    /// Every stored projection and series entry, keyed by database name and key: what a rebuild
    /// must reproduce byte for byte.
    public func storedProjections() throws -> [String: [[UInt8]: [UInt8]]] {
        try storedEnd().projections
    }

    /// What a ledger holds at its end, from one snapshot: the number of events, the stored
    /// projections (as `storedProjections`) and the key of the last stored Merkle node (as
    /// `lastStoredNode`), for an audit to compare with what it replayed up to that size.
    package func storedEnd() throws -> (size: UInt64, projections: [String: [[UInt8]: [UInt8]]], lastNode: (lastLeaf: UInt64, level: Int)?) {
        var out: [String: [[UInt8]: [UInt8]]] = [:]
        let (size, lastNode) = try env.read { txn in
            let size = try Self.size(in: txn, dbs)
            for db in [dbs.projections, dbs.series] {
                var entries: [[UInt8]: [UInt8]] = [:]
                try txn.forEach(in: db) { key, value in
                    entries[Array(key)] = Array(value)
                    return true
                }
                out[db.name] = entries
            }
            return (size, try Self.lastStoredNode(in: txn, dbs))
        }
        return (size, out, lastNode)
    }

    /// The projection documents `state` gives, keyed like `storedProjections`.
    public static func expectedProjections(of state: LedgerState) -> [String: [[UInt8]: [UInt8]]] {
        var projections: [[UInt8]: [UInt8]] = [:]
        var series: [[UInt8]: [UInt8]] = [:]
        for e in state.elections {
            projections[LedgerKeys.projection(e.id, .tally)] = Tally(e).json.serialized()
            projections[LedgerKeys.projection(e.id, .jury)] = JuryTable(e).json.serialized()
            projections[LedgerKeys.projection(e.id, .ranking)] = Ranking(e).json.serialized()
            for start in e.seriesBuckets {
                series[LedgerKeys.seriesBucket(e.id, start)] = VotesOverTimeBucket(e, bucket: start).json.serialized()
            }
        }
        return [LedgerKeys.projections: projections, LedgerKeys.series: series]
    }

    /// Decodes events in order from `start`, handing each (with its stored bytes) to `body`
    /// until it returns false. A record that does not decode, or a gap in the sequence, throws
    /// `LedgerError.corruptRecord` with its sequence number: nothing is skipped. `body` also
    /// gets a lookup that reads any other event from the same snapshot.
    public func forEachRecord(from start: UInt64 = 1, chunk: Int = 50_000,
                              _ body: (RecordedEvent, UnsafeRawBufferPointer, _ lookup: (UInt64) throws -> RecordedEvent?) throws -> Bool) throws {
        var next = max(start, 1)
        try eachStoredRecord(from: next, chunk: chunk) { txn, seq, value in
            guard seq == next else {
                throw LedgerError.corruptRecord(seq: next, reason: "event \(next) is missing: the next stored event is \(seq)")
            }
            next += 1
            return try body(try RecordCodec.decode(value, seq: seq), value, { try Self.record($0, in: txn, dbs) })
        }
    }

    /// Hands every stored record from `start` to `body` with its sequence number (the key) and
    /// bytes, undecoded, until it returns false; a fresh read transaction every `chunk` records.
    /// Unlike `forEachRecord` it neither decodes nor stops at a gap: an auditor wants to see
    /// every record that is there. A key that is not 8 bytes throws. `body` can also read, from
    /// the same snapshot, any stored Merkle node (nil if absent, `.some(nil)` if not 32 bytes).
    public func scan(from start: UInt64 = 1, chunk: Int = 65_536,
                     _ body: (_ seq: UInt64, _ bytes: UnsafeRawBufferPointer,
                              _ storedNode: (_ level: Int, _ index: UInt64) throws -> MerkleHash??) throws -> Bool) throws {
        try eachStoredRecord(from: start, chunk: chunk) { txn, seq, value in
            try body(seq, value, { level, index in try Self.storedNode(level, index, in: txn, dbs) })
        }
    }

    /// The stored records of one segment of the ledger, read in one snapshot: those whose keys
    /// lie from `LedgerKeys.sequence(first)` up to, not including, `LedgerKeys.sequence(end)` (to
    /// the last key when `end` is nil), in key order. `body` gets them once (sequence number and
    /// bytes, valid until it returns) with the stored-node lookup of the same snapshot. Every key
    /// lies in exactly one of a row of segments that share their bounds, so an audit can read
    /// them on several threads and still meet every record once; the first of the row reads
    /// from the very first key when `fromTheFirstKey`, so that no key sorts before them all. A
    /// key that is not 8 bytes, or one under a sequence number before `first`, throws, after
    /// `body` has had the records before it.
    public func readSegment(from first: UInt64, to end: UInt64?, fromTheFirstKey: Bool = false,
                            _ body: (_ records: [(seq: UInt64, bytes: UnsafeRawBufferPointer)],
                                     _ storedNodes: (_ lastLeaves: Range<UInt64>, _ into: inout [(lastLeaf: UInt64, level: Int, hash: MerkleHash?)]) throws -> Void) throws -> Void) throws {
        try env.read { txn in
            var records: [(seq: UInt64, bytes: UnsafeRawBufferPointer)] = []
            if let end, end > first { records.reserveCapacity(Int(min(end - first, 1 << 16))) }
            var stray: LedgerError?
            try txn.forEachRun(in: dbs.events, from: fromTheFirstKey ? nil : LedgerKeys.sequence(first), run: 256) { entries in
                for (key, value) in entries {
                    guard key.count == 8 else {
                        if let end, !LedgerKeys.precedes(key, end) { return false }
                        stray = Self.badKey(key, after: records.last?.seq ?? first - 1)
                        return false
                    }
                    let seq = LedgerKeys.sequence(unchecked: key)
                    if let end, seq >= end { return false }
                    guard seq >= first else {
                        stray = .corruptRecord(seq: seq, reason: "a record is stored under sequence number \(seq) in 'events', before event \(first); sequence numbers start at 1")
                        return false
                    }
                    records.append((seq, value))
                }
                return true
            }
            try body(records, { try Self.storedNodes(lastLeaves: $0, in: txn, dbs, into: &$1) })
            if let stray { throw stray }
        }
    }

    /// The stored Merkle nodes whose last leaf is in `lastLeaves`, in a read transaction of
    /// their own, appended to `nodes` (see `storedNodes(lastLeaves:in:_:into:)`).
    package func storedNodes(lastLeaves: Range<UInt64>, into nodes: inout [(lastLeaf: UInt64, level: Int, hash: MerkleHash?)]) throws {
        try env.read { txn in try Self.storedNodes(lastLeaves: lastLeaves, in: txn, dbs, into: &nodes) }
    }

    /// The stored Merkle nodes whose last leaf is in `lastLeaves`, appended to `nodes` in key
    /// order (last leaf, then level), with their hashes (nil when a value is not 32 bytes): the
    /// nodes that those leaves complete, in one cursor walk where a look-up each would descend
    /// the tree each time. Keys that are not 9 bytes are no node's and are passed over.
    private static func storedNodes(lastLeaves: Range<UInt64>, in txn: borrowing ReadTransaction, _ dbs: LedgerDatabases,
                                    into nodes: inout [(lastLeaf: UInt64, level: Int, hash: MerkleHash?)]) throws {
        try txn.forEach(in: dbs.merkle, from: LedgerKeys.sequence(lastLeaves.lowerBound)) { key, value in
            guard key.count >= 8 else { return true }
            let lastLeaf = UInt64(bigEndian: key.loadUnaligned(as: UInt64.self))
            guard lastLeaf < lastLeaves.upperBound else { return false }
            if key.count == 9 { nodes.append((lastLeaf, Int(key[8]), value.count == 32 ? MerkleHash(value) : nil)) }
            return true
        }
    }

    private static func storedNode(_ level: Int, _ index: UInt64, in txn: borrowing ReadTransaction,
                                   _ dbs: LedgerDatabases) throws -> MerkleHash?? {
        try LedgerKeys.merkleNode(level: level, index: index).withUnsafeBytes { k in
            try txn.withValue(forKey: k, in: dbs.merkle) { v -> MerkleHash? in v.count == 32 ? MerkleHash(v) : nil }
        }
    }

    /// The stored records from `start` in key order, each with the transaction it was read in,
    /// until `body` returns false. A key that is not 8 bytes throws. (One cursor call and one
    /// call of `body` per record: for a consumer that reads each record as it comes this is
    /// faster than runs, measured on the bare scan.)
    private func eachStoredRecord(from start: UInt64, chunk: Int,
                                  _ body: (borrowing ReadTransaction, UInt64, UnsafeRawBufferPointer) throws -> Bool) throws {
        try inSnapshots(from: start, chunk: chunk) { txn, from, next in
            var visited = 0
            var stop = false
            try txn.forEach(in: dbs.events, from: from) { key, value in
                guard let seq = LedgerKeys.sequence(of: key) else { throw Self.badKey(key, after: next - 1) }
                next = seq + 1
                visited += 1
                if try !body(txn, seq, value) {
                    stop = true
                    return false
                }
                return visited < chunk
            }
            return (visited, stop)
        }
    }

    /// Reads in snapshots, a fresh read transaction after each `chunk` records (or the first
    /// whole run past them), so that a long read never pins an old snapshot: `walk` reads from
    /// the key `from` on, sets `next` to the sequence number after the last it visited, and says
    /// how many it visited and whether its caller stopped. A walk that visits fewer than `chunk`
    /// has reached the end. A snapshot resumes just past the last key visited, not at `next`, so
    /// that a stray key sorting between the two is met there as anywhere else.
    private func inSnapshots(from start: UInt64, chunk: Int,
                             _ walk: (borrowing ReadTransaction, _ from: [UInt8], _ next: inout UInt64) throws -> (visited: Int, stop: Bool)) throws {
        var next = max(start, 1)
        var from = LedgerKeys.sequence(next)
        while true {
            let (visited, stop) = try env.read { txn in try walk(txn, from, &next) }
            if stop || visited < chunk { return }
            from = LedgerKeys.sequence(next - 1) + [0]
        }
    }

    private static func badKey(_ key: UnsafeRawBufferPointer, after seq: UInt64) -> LedgerError {
        .corruptRecord(seq: seq + 1, reason: seq == 0 ? "a key of \(key.count) bytes comes before event 1 in 'events'; keys are 8 bytes"
                                                      : "a key of \(key.count) bytes follows event \(seq) in 'events'; keys are 8 bytes")
    }

    /// The key of the last stored Merkle node as (last leaf index, level), or nil if none.
    private static func lastStoredNode(in txn: borrowing ReadTransaction, _ dbs: LedgerDatabases) throws -> (lastLeaf: UInt64, level: Int)? {
        try txn.withLastEntry(in: dbs.merkle) { key, _ in
            key.count == 9 ? (UInt64(bigEndian: key.loadUnaligned(as: UInt64.self)), Int(key[8])) : (UInt64.max, -1)
        }
    }

    // MARK: Inside a transaction

    package static func size<A>(in txn: borrowing Transaction<A>, _ dbs: LedgerDatabases) throws -> UInt64 {
        try txn.withLastEntry(in: dbs.events) { key, _ in
            guard let seq = LedgerKeys.sequence(of: key) else {
                throw LedgerError.corruptRecord(seq: 0, reason: "the last key in 'events' is \(key.count) bytes; keys are 8 bytes")
            }
            return seq
        } ?? 0
    }

    package static func record<A>(_ seq: UInt64, in txn: borrowing Transaction<A>, _ dbs: LedgerDatabases) throws -> RecordedEvent? {
        try LedgerKeys.sequence(seq).withUnsafeBytes { key in
            try txn.withValue(forKey: key, in: dbs.events) { try RecordCodec.decode($0, seq: seq) }
        }
    }

    /// The Merkle node (`level`, `index`): read from 'merkle' from `LedgerKeys.firstStoredLevel`
    /// up, recomputed from the records it covers below that. A missing node or record, or a
    /// malformed node, is corruption.
    package static func node<A>(_ level: Int, _ index: UInt64, in txn: borrowing Transaction<A>, _ dbs: LedgerDatabases) throws -> MerkleHash {
        let firstSeq = (index << UInt64(level)) + 1
        guard level >= LedgerKeys.firstStoredLevel else {
            return try computedNode(level, firstSeq: firstSeq, in: txn, dbs)
        }
        let hash = try LedgerKeys.merkleNode(level: level, index: index).withUnsafeBytes { k in
            try txn.withValue(forKey: k, in: dbs.merkle) { v -> MerkleHash in
                guard v.count == 32 else {
                    throw LedgerError.corruptRecord(seq: firstSeq, reason: "Merkle node (level \(level), index \(index)) is \(v.count) bytes, not 32")
                }
                return MerkleHash(v)
            }
        }
        guard let hash else {
            throw LedgerError.corruptRecord(seq: firstSeq, reason: "Merkle node (level \(level), index \(index)) is missing")
        }
        return hash
    }

    /// The root of the 2^level records from `firstSeq`, from their leaf hashes.
    private static func computedNode<A>(_ level: Int, firstSeq: UInt64, in txn: borrowing Transaction<A>,
                                        _ dbs: LedgerDatabases) throws -> MerkleHash {
        let count = 1 << level
        var row: [MerkleHash] = []
        row.reserveCapacity(count)
        try txn.forEach(in: dbs.events, from: LedgerKeys.sequence(firstSeq)) { key, value in
            guard LedgerKeys.sequence(of: key) == firstSeq + UInt64(row.count) else { return false }
            row.append(MerkleHash.leaf(value))
            return row.count < count
        }
        guard row.count == count else {
            throw LedgerError.corruptRecord(seq: firstSeq + UInt64(row.count), reason: "the event is missing from 'events'")
        }
        while row.count > 1 {
            row = stride(from: 0, to: row.count, by: 2).map { MerkleHash.node(row[$0], row[$0 + 1]) }
        }
        return row[0]
    }
}
