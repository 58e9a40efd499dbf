public import BallotStore
public import BallotDomain
public import BallotCollections
public import BallotFormat
public import BallotAudit

/// A command as the ledger receives it: what, from whom, and the client's idempotency key.
public struct Submission: Sendable {
    public var command: Command
    public var actor: Actor
    /// Empty for none. Within its `IdempotencyScope`, the same key with the same content returns
    /// the original event; with different content (another election included) it is a `conflict`.
    public let idempotencyKey: String
    /// Where the key lives in the writer's index; hashed here, on whichever thread makes the
    /// submission, so that the one writer thread does not.
    let idempotencySlot: Key128?

    public init(_ command: Command, by actor: Actor, idempotencyKey: String = "") {
        self.command = command
        self.actor = actor
        self.idempotencyKey = idempotencyKey
        idempotencySlot = idempotencyKey.isEmpty ? nil : IdempotencyScope(command).slot(idempotencyKey)
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
/// so the projections are never behind the log. If the transaction fails, what the batch changed
/// in memory is taken back (no replay), so memory never runs ahead of the log either.
///
/// Not thread-safe: call `submit` from one thread. `reader` may be used from any thread.
public final class Ledger {
    public struct Options: Sendable {
        public var environment: EnvironmentOptions
        /// While replaying on open, re-decide every event through the rules (see
        /// `LedgerState.check`) and rebuild the Merkle tree from the records, comparing every
        /// stored node. Off, opening trusts the stored tree and the events (a faster start).
        public var verifyOnOpen: Bool

        public init(environment: EnvironmentOptions = .init(), verifyOnOpen: Bool = true) {
            self.environment = environment
            self.verifyOnOpen = verifyOnOpen
        }
    }

    public let path: String
    public let reader: LedgerReader
    private let env: Environment
    private let dbs: LedgerDatabases
    private let options: Options
    let clock: any LedgerClock
    /// Signs checkpoints; without it `takeCheckpoint` is refused and none is taken on close.
    private let checkpointKey: CheckpointKey?
    private(set) var writer: WriterState

    public init(path: String, options: Options = .init(), clock: any LedgerClock = SystemClock(),
                checkpointKey: CheckpointKey? = nil) throws {
        self.path = path
        self.options = options
        self.clock = clock
        self.checkpointKey = checkpointKey
        do {
            env = try Environment(path: path, options: options.environment)
            dbs = try LedgerDatabases(env)
        } catch let error as StoreError {
            throw LedgerError.store(error)
        }
        reader = LedgerReader(env: env, dbs: dbs)
        writer = WriterState()
        try checkFormat()
        try reload()
    }

    /// Closes the environment. The ledger must not be used afterwards.
    public func close() { env.close() }

    /// Every election as the log stands.
    public var state: LedgerState { writer.state }
    /// The Merkle root of the whole log as it stands.
    public var root: MerkleHash { writer.frontier.root }
    public var size: UInt64 { writer.frontier.size }
    /// The public half of the checkpoint key, if there is one.
    public var checkpointPublicKey: Digest32? { checkpointKey?.publicKey }

    /// The map's size and use.
    public func storageInfo() throws -> EnvironmentInfo { try env.info() }

    /// The tally and ranking documents (canonical JSON, as stored) of each election the last
    /// successful `submit` changed.
    public var standingsWritten: [ElectionID: (tally: [UInt8], ranking: [UInt8])] { writer.standingsWritten }

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
        let now = max(clock.now(), writer.lastTimestamp)
        do {
            // A map that fills mid-transaction is grown and the batch run again, from the state
            // before it.
            let outcomes = try env.write("appending a batch of \(batch.count) commands",
                                         beforeRetry: { self.writer.takeBackBatch() }) { txn in
                try self.writer.append(batch, at: now, key: self.checkpointKey, in: txn, dbs)
            }
            writer.endBatch()
            writer.lastTimestamp = now
            return outcomes
        } catch {
            // Nothing of the batch was stored: take back what it changed in memory.
            writer.takeBackBatch()
            if let storeError = error as? StoreError { throw LedgerError.store(storeError) }
            throw error
        }
    }

    /// Throws the stored projections away and writes them again from a replay of every event.
    /// The result is byte-identical to what the incremental path wrote.
    public func rebuildProjections() throws {
        try reload()
        var everything = ProjectionChanges()
        for election in state.elections {
            everything.note(election.id)
            for start in election.seriesBuckets { everything.note(election.id, bucket: start) }
        }
        do {
            try env.write("rebuilding the projections") { txn in
                try txn.removeAll(in: dbs.projections)
                try txn.removeAll(in: dbs.series)
                try writer.writeProjections(everything, in: txn, dbs)
            }
            writer.standingsWritten = [:]   // publishing is for what a submit changed
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
        writer = try WriterState.load(from: reader, verify: options.verifyOnOpen)
        replays += 1
    }

    /// How many times the whole log was replayed: once at open, and once per
    /// `rebuildProjections` (tests check that a failed write adds none).
    private(set) var replays = 0
}

