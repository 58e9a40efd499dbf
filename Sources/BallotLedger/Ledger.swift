public import BallotStore
public import BallotDomain
import Crypto

/// A command as the ledger receives it: what, from whom, and the client's idempotency key.
public struct Submission: Sendable {
    public var command: Command
    public var actor: Actor
    /// Empty for none. The same key (within one election) with the same content returns the
    /// original event; with different content it is a `conflict`.
    public var idempotencyKey: String

    public init(_ command: Command, by actor: Actor, idempotencyKey: String = "") {
        self.command = command
        self.actor = actor
        self.idempotencyKey = idempotencyKey
    }
}

/// Where an appended event stands: its sequence number and leaf hash.
public struct Receipt: Sendable, Equatable {
    public var seq: UInt64
    public var leafHash: MerkleHash
}

/// What became of one submission.
public enum Outcome: Sendable, Equatable {
    /// Appended and durable once `submit` returns.
    case appended(Receipt)
    /// The idempotency key was seen before with the same content: nothing appended.
    case repeated(Receipt)
    /// Refused by the rules; nothing written for it.
    case refused(DomainError)

    public var receipt: Receipt? {
        switch self {
        case .appended(let r), .repeated(let r): r
        case .refused: nil
        }
    }
}

/// The event log: the one writer of a ledger directory.
///
/// On open it replays every event (checking each against the rules) to rebuild the in-memory
/// state: elections, the voter sets that refuse a second vote, the idempotency keys and the
/// Merkle frontier. `submit` decides a batch of commands against that state and appends the
/// accepted events, their Merkle nodes and the projections they change in one LMDB transaction,
/// so the projections are never behind the log. If the transaction fails, the in-memory state is
/// rebuilt from what is stored, so it never runs ahead of the log either.
///
/// Not thread-safe: call `submit` from one thread. `reader` may be used from any thread.
public final class Ledger {
    public struct Options: Sendable {
        public var environment: EnvironmentOptions
        /// Re-decide every stored event while replaying on open (see `LedgerState.check`).
        public var checkRulesOnOpen: Bool

        public init(environment: EnvironmentOptions = .init(), checkRulesOnOpen: Bool = true) {
            self.environment = environment
            self.checkRulesOnOpen = checkRulesOnOpen
        }
    }

    public let path: String
    public let reader: LedgerReader
    public private(set) var state = LedgerState()
    private let env: Environment
    private let dbs: LedgerDatabases
    private let options: Options
    private let clock: any LedgerClock
    private var frontier = MerkleFrontier()
    private var idempotency: [IdempotencySlot: UInt64] = [:]
    private var lastTimestamp = Timestamp(microseconds: 0)

    public init(path: String, options: Options = .init(), clock: any LedgerClock = SystemClock()) throws {
        self.path = path
        self.options = options
        self.clock = clock
        do {
            env = try Environment(path: path, options: options.environment)
            dbs = try LedgerDatabases(env)
        } catch let error as StoreError {
            throw LedgerError.store(error)
        }
        reader = LedgerReader(env: env, dbs: dbs)
        try checkFormat()
        try reload()
    }

    /// Closes the environment. The ledger must not be used afterwards.
    public func close() { env.close() }

    /// The Merkle root of the whole log as it stands.
    public var root: MerkleHash { frontier.root }
    public var size: UInt64 { frontier.size }

    /// The map's size and use.
    public func storageInfo() throws -> EnvironmentInfo { try env.info() }

    // MARK: Appending

    /// Decides and appends one command.
    public func submit(_ submission: Submission) throws -> Outcome {
        try submit([submission])[0]
    }

    /// Decides each submission in order against the state left by the ones before it, and
    /// appends the accepted events in one transaction (one fsync). Returns one outcome per
    /// submission once the transaction is durable. Throws (having written nothing) when the
    /// store fails; `LedgerError.isLedgerFull` tells the `ledger_full` case.
    public func submit(_ batch: [Submission]) throws -> [Outcome] {
        let now = max(clock.now(), lastTimestamp)
        do {
            let outcomes = try env.write("appending a batch of \(batch.count) commands",
                                         beforeRetry: { try self.reload() }) { txn in
                try self.append(batch, at: now, in: txn)
            }
            lastTimestamp = now
            return outcomes
        } catch {
            // The batch may have changed the in-memory state before the transaction failed.
            try reload()
            if let storeError = error as? StoreError { throw LedgerError.store(storeError) }
            throw error
        }
    }

    private func append(_ batch: [Submission], at now: Timestamp, in txn: borrowing WriteTransaction) throws -> [Outcome] {
        var outcomes: [Outcome] = []
        outcomes.reserveCapacity(batch.count)
        var changed = ProjectionChanges()
        var writer = ByteWriter(capacity: 256)
        for submission in batch {
            outcomes.append(try append(submission, at: now, in: txn, changed: &changed, writer: &writer))
        }
        try writeProjections(changed, in: txn)
        return outcomes
    }

    private func append(_ submission: Submission, at now: Timestamp, in txn: borrowing WriteTransaction,
                        changed: inout ProjectionChanges, writer: inout ByteWriter) throws -> Outcome {
        let key = submission.idempotencyKey
        var slot: IdempotencySlot?
        if !key.isEmpty {
            guard key.utf8.count <= RecordCodec.maxIdempotencyKeyBytes else {
                return .refused(DomainError(.badRequest, "idempotency key is \(key.utf8.count) bytes; at most \(RecordCodec.maxIdempotencyKeyBytes)"))
            }
            let s = IdempotencySlot(election: submission.command.election, key: key)
            if let seq = idempotency[s] {
                return try repeated(submission, original: seq, in: txn)
            }
            slot = s
        }
        let event: Event
        do {
            event = try state.decide(submission.command, at: now) { seq in
                guard case .voteCast(let vote)? = try LedgerReader.record(seq, in: txn, dbs)?.event else { return nil }
                return vote
            }
        } catch let refusal as DomainError {
            return .refused(refusal)
        }
        let seq = state.lastSeq + 1
        let record = RecordedEvent(seq: seq, timestamp: now, actor: submission.actor, idempotencyKey: key, event: event)
        writer.bytes.removeAll(keepingCapacity: true)
        RecordCodec.encode(record, into: &writer)
        let leaf = writer.bytes.withUnsafeBytes { MerkleHash.leaf($0) }
        try LedgerKeys.sequence(seq).withUnsafeBytes { k in
            try writer.bytes.withUnsafeBytes { v in
                try txn.put(k, v, in: dbs.events, flags: .append, "appending event \(seq) (\(event.kind)) to 'events'")
            }
        }
        try frontier.append(leaf) { level, index, hash in
            try LedgerKeys.merkleNode(level: level, index: index).withUnsafeBytes { k in
                try hash.withBytes { v in
                    try txn.put(k, v, in: dbs.merkle, flags: .append, "storing Merkle node (level \(level), index \(index)) for event \(seq)")
                }
            }
        }
        state.apply(record)
        if let slot { idempotency[slot] = seq }
        changed.note(event, state)
        return .appended(Receipt(seq: seq, leafHash: leaf))
    }

    /// A key seen before: the original receipt if the content matches, else a conflict.
    private func repeated(_ submission: Submission, original seq: UInt64, in txn: borrowing WriteTransaction) throws -> Outcome {
        guard let original = try LedgerReader.record(seq, in: txn, dbs) else {
            throw LedgerError.corruptRecord(seq: seq, reason: "idempotency key '\(submission.idempotencyKey)' points at a missing event")
        }
        guard submission.command.matches(original.event) else {
            return .refused(DomainError(.conflict, "idempotency key '\(submission.idempotencyKey)' was already used in '\(submission.command.election)' for event \(seq) (\(original.event.kind)) with different content"))
        }
        let leaf = try LedgerReader.node(0, seq - 1, in: txn, dbs)
        return .repeated(Receipt(seq: seq, leafHash: leaf))
    }

    // MARK: Projections

    private func writeProjections(_ changed: ProjectionChanges, in txn: borrowing WriteTransaction) throws {
        for id in changed.elections.sorted() {
            guard let election = state[id] else { continue }
            try put(Tally(election).json, LedgerKeys.projection(id, .tally), dbs.projections, txn)
            try put(JuryTable(election).json, LedgerKeys.projection(id, .jury), dbs.projections, txn)
            try put(Ranking(election).json, LedgerKeys.projection(id, .ranking), dbs.projections, txn)
        }
        for bucket in changed.buckets {
            guard let election = state[bucket.election] else { continue }
            try put(VotesOverTimeBucket(election, bucket: bucket.start).json,
                    LedgerKeys.seriesBucket(bucket.election, bucket.start), dbs.series, txn)
        }
    }

    private func put(_ doc: JSONValue, _ key: [UInt8], _ db: Database, _ txn: borrowing WriteTransaction) throws {
        try txn.put(key, doc.serialized(), in: db, "writing projection \(String(decoding: key.map { $0 == 0 ? 0x2F : $0 }, as: UTF8.self)) to \(db)")
    }

    /// Throws the stored projections away and writes them again from a replay of every event.
    /// The result is byte-identical to what the incremental path wrote.
    public func rebuildProjections() throws {
        try reload()
        var everything = ProjectionChanges()
        for (id, election) in state.elections {
            everything.elections.insert(id)
            for start in election.series.keys {
                everything.buckets.insert(.init(election: id, start: start))
            }
        }
        do {
            try env.write("rebuilding the projections") { txn in
                try txn.removeAll(in: dbs.projections)
                try txn.removeAll(in: dbs.series)
                try writeProjections(everything, in: txn)
            }
        } catch let error as StoreError {
            throw LedgerError.store(error)
        }
    }

    // MARK: Opening

    private func checkFormat() throws {
        do {
            let stored = try env.read { txn in try txn.value(forKey: Array("format".utf8), in: dbs.meta) }
            if let stored {
                guard stored == [RecordCodec.formatVersion] else {
                    throw LedgerError.unsupportedFormat(found: stored.first ?? 0, supported: RecordCodec.formatVersion, at: "the ledger at \(path)")
                }
            } else if !env.options.readOnly {
                try env.write("recording the format version") { txn in
                    try txn.put(Array("format".utf8), [RecordCodec.formatVersion], in: dbs.meta)
                }
            }
        } catch let error as StoreError {
            throw LedgerError.store(error)
        }
    }

    /// Rebuilds the in-memory state from the stored events.
    private func reload() throws {
        var fresh = LedgerState()
        var keys: [IdempotencySlot: UInt64] = [:]
        var last = Timestamp(microseconds: 0)
        let check = options.checkRulesOnOpen
        do {
            try reader.forEachRecord { record, _ in
                if check, let finding = try fresh.check(record, lookupVote: { seq in
                    guard case .voteCast(let vote)? = try reader.record(seq)?.event else { return nil }
                    return vote
                }) {
                    throw LedgerError.corruptRecord(seq: record.seq, reason: "the rules refuse this \(record.event.kind) event: \(finding)")
                }
                if record.timestamp < last {
                    throw LedgerError.corruptRecord(seq: record.seq, reason: "its timestamp \(record.timestamp) is earlier than the previous event's \(last)")
                }
                last = record.timestamp
                fresh.apply(record)
                if !record.idempotencyKey.isEmpty {
                    keys[IdempotencySlot(election: record.event.election, key: record.idempotencyKey)] = record.seq
                }
                return true
            }
            let size = fresh.lastSeq
            frontier = try env.read { txn in
                try MerkleFrontier(size: size) { l, i in try LedgerReader.node(l, i, in: txn, dbs) }
            }
        } catch let error as StoreError {
            throw LedgerError.store(error)
        }
        state = fresh
        idempotency = keys
        lastTimestamp = last
    }
}

/// An idempotency key within one election, as the first 128 bits of
/// SHA-256(election ‖ 0x00 ‖ key): fixed size in memory however long the key.
struct IdempotencySlot: Hashable {
    let a: UInt64
    let b: UInt64

    init(election: ElectionID, key: String) {
        var h = SHA256()
        h.update(data: Array(election.value.utf8))
        h.update(data: [0])
        h.update(data: Array(key.utf8))
        (a, b) = h.finalize().withUnsafeBytes {
            ($0.loadUnaligned(fromByteOffset: 0, as: UInt64.self), $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        }
    }

    func hash(into hasher: inout Hasher) { hasher.combine(a) }
}

/// Which projection documents a batch changed.
struct ProjectionChanges {
    struct Bucket: Hashable {
        let election: ElectionID
        /// The bucket's start, microseconds.
        let start: Int64
    }

    var elections: Set<ElectionID> = []
    var buckets: Set<Bucket> = []

    /// Notes what `event`, just applied to `state`, changed.
    mutating func note(_ event: Event, _ state: LedgerState) {
        elections.insert(event.election)
        let castAt: Timestamp
        switch event {
        case .voteCast(let v): castAt = v.castAt
        case .voteInvalidated(let x): castAt = x.castAt
        default: return
        }
        if let definition = state[event.election]?.definition {
            buckets.insert(Bucket(election: event.election, start: definition.bucket(of: castAt)))
        }
    }
}
