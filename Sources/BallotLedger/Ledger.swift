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
    /// submission, so that the one writer thread does not, with this process's seed
    /// (`slotSeed`; a writer whose index kept another seed hashes it again).
    let idempotencySlot: Key128?
    let slotSeed: UInt64

    public init(_ command: Command, by actor: Actor, idempotencyKey: String = "") {
        self.command = command
        self.actor = actor
        self.idempotencyKey = idempotencyKey
        slotSeed = IdempotencySlot.seed
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

/// How much of a ledger an open checks, with the one engine an auditor runs (`Audit.verify`).
public enum OpenCheck: String, Sendable, CaseIterable {
    /// Every event, from the first, as `ballot-replay verify` does (in tables of its own, so
    /// that a finding leaves the kept state as it was), then `tail`. A finding stops the open.
    case full
    /// The events after the kept state (all of them when there is none), and the newest signed
    /// checkpoint: its signature, and its root against the stored tree. A finding stops the open.
    case tail
    /// The same replay as `tail`, its findings not stopping the open (the ledger is trusted).
    case none
}

/// The event log: the one writer of a ledger directory.
///
/// What it knows beyond its records (elections, voters, idempotency keys, the Merkle frontier)
/// is kept between starts in `<path>/state` (`KeptState`), so that an open replays, through the
/// auditor's engine, only the events after it. `submit` decides a batch of commands against
/// that state and appends the accepted events, their Merkle nodes and the projections they
/// change in one LMDB transaction, so the projections are never behind the log. If the
/// transaction fails, what the batch changed in memory is taken back (no replay), so memory
/// never runs ahead of the log either: outside a call, and within a follower's `replicate`
/// call by two slices at most (the one committing, and the next, verified meanwhile).
///
/// Not thread-safe: call `submit` and `replicate` from one thread. `reader` may be used from
/// any thread.
public final class Ledger {
    public struct Options: Sendable {
        public var environment: EnvironmentOptions
        /// What an open checks (`OpenCheck`).
        public var check: OpenCheck
        /// Whether to keep the state between starts (a read-only ledger never does).
        public var keepState: Bool
        /// How many events may pass between two snapshots of the kept state: the most an open
        /// after a crash replays.
        public var snapshotInterval: UInt64
        /// Told, before the replay, why the kept state is being rebuilt (which at 100 million
        /// events takes a while): the daemon logs it.
        public var rebuilding: (@Sendable (String) -> Void)?
        /// The most slots the kept voter table and key index grow to before their older entries
        /// go to layers that never change (`TableLayers`): 2^25 (512 MB and 256 MB of file), so
        /// that the pages a batch dirties stay far below the kernel's dirty limit.
        public var keptTableSlots: Int
        /// The origin line of the checkpoints' notes (c2sp.org/tlog-checkpoint): the log's name.
        /// Nil: the one the ledger's checkpoints already carry, else `ballotledger/<ledger id>`
        /// (`CheckpointSigner.origin`).
        public var checkpointOrigin: String?

        public init(environment: EnvironmentOptions = .init(), check: OpenCheck = .tail, keepState: Bool = true,
                    snapshotInterval: UInt64 = 100_000, keptTableSlots: Int = 1 << 25, checkpointOrigin: String? = nil,
                    rebuilding: (@Sendable (String) -> Void)? = nil) {
            self.keptTableSlots = keptTableSlots
            self.checkpointOrigin = checkpointOrigin
            self.environment = environment
            self.check = check
            self.keepState = keepState
            self.snapshotInterval = snapshotInterval
            self.rebuilding = rebuilding
        }
    }

    /// What the open did, for the daemon's log and `status`.
    public struct Opening: Sendable {
        /// The events the kept state covered (0 when there was none, or it was not used).
        public var keptEvents: UInt64
        /// Why the kept state was not used, when it was not (and the state was rebuilt).
        public var rebuiltBecause: String?
        /// The events replayed through the audit engine.
        public var replayedEvents: UInt64
        /// What the replay found; with `OpenCheck.none` an open goes on regardless.
        public var findings: [AuditFinding]
        public var check: OpenCheck
    }

    public let path: String
    public let reader: LedgerReader
    private let env: Environment
    private let dbs: LedgerDatabases
    private let options: Options
    let clock: any LedgerClock
    /// Signs checkpoints; without it `takeCheckpoint` is refused and none is taken on close.
    private let checkpointSigner: CheckpointSigner?
    /// The origin the ledger's checkpoints carry (`Options.checkpointOrigin`).
    public let checkpointOrigin: String
    private(set) var writer: WriterState
    /// The files of the kept state; nil for a ledger that keeps none.
    let kept: KeptState?
    /// The ledger's id (its meta 'ledger_id'), which the kept state and jurors' statements name.
    /// A follower's empty ledger takes its primary's (`replicate`).
    public private(set) var ledgerID: [UInt8]
    /// The event the last snapshot covers.
    private var snapshotAt: UInt64 = 0
    public private(set) var opening: Opening
    /// Why the last snapshot could not be written (the batch it followed was durable anyway).
    public private(set) var lastSnapshotError: String?
    /// What is failing in the kept state, if anything: a snapshot that could not be written, or
    /// a run of a table's older entries that could not be built (`TableLayers`).
    public var keptStateError: String? { lastSnapshotError ?? kept?.buildError.map { "building a run of the kept tables: \($0)" } }

    public init(path: String, options: Options = .init(), clock: any LedgerClock = SystemClock(),
                checkpointKey: CheckpointKey? = nil) throws {
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
        ledgerID = try Self.checkFormat(env, dbs, path: path)
        let keeps = options.keepState && !env.options.readOnly
        kept = keeps ? try KeptState(directory: "\(path)/state", capSlots: options.keptTableSlots) : nil
        (writer, opening) = try Self.open(reader, kept: kept, ledgerID: ledgerID, options: options)
        let origin = try CheckpointSigner.origin(configured: options.checkpointOrigin,
                                                 last: writer.state.lastCheckpoint?.checkpoint, ledgerID: ledgerID)
        checkpointOrigin = origin
        checkpointSigner = checkpointKey.map { CheckpointSigner(origin: origin, key: $0) }
        snapshotAt = writer.state.lastSeq
        // Written at once: a snapshot on disk that says "clean" must not outlive the first change.
        try saveSnapshot(clean: false)
        replays = 1
    }

    /// Closes the environment, having written the kept state in full. The ledger must not be
    /// used afterwards.
    public func close() {
        try? saveSnapshot(clean: true)
        kept?.release()
        env.close()
    }

    /// Closes the environment as the death of the process would: no snapshot, nothing synced
    /// (tests of what an open finds after a crash; the tables' pages are in the page cache).
    func closeAsIfKilled() {
        kept?.release()
        env.close()
    }

    /// Every election as the log stands.
    public var state: LedgerState { writer.state }
    /// The Merkle root of the whole log as it stands.
    public var root: MerkleHash { writer.frontier.root }
    public var size: UInt64 { writer.frontier.size }
    /// The public half of the checkpoint key, if there is one.
    public var checkpointPublicKey: Digest32? { checkpointSigner?.key.publicKey }

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
    /// store fails; `LedgerError.isLedgerFull` tells the `ledger_full` case. `expecting`: how
    /// many more submissions the caller expects to send soon (an import's estimate of its
    /// remaining rows), for which the voter table and the key index grow at once, when they
    /// must grow, rather than doubling batch after batch.
    public func submit(_ batch: [Submission], expecting: Int = 0) throws -> [Outcome] {
        let now = max(clock.now(), writer.lastTimestamp)
        // Each submission adds at most one voter and one key (a checkpoint neither). A table
        // that doubled no longer matches the snapshot's layout: a new snapshot at once, so that a
        // crash now replays a tail, not every event.
        if try writer.reserve(batch.count, ahead: expecting) { try? saveSnapshot(clean: false) }
        do {
            // A map that fills mid-transaction is grown and the batch run again, from the state
            // before it.
            let outcomes = try env.write("appending a batch of \(batch.count) commands",
                                         beforeRetry: { self.writer.takeBackBatch() }) { txn in
                try self.writer.append(batch, at: now, signer: self.checkpointSigner, in: txn, dbs)
            }
            writer.endBatch()
            writer.lastTimestamp = now
            snapshotIfDue()
            return outcomes
        } catch {
            // Nothing of the batch was stored: take back what it changed in memory.
            writer.takeBackBatch()
            if let storeError = error as? StoreError { throw LedgerError.store(storeError) }
            throw error
        }
    }

    /// A follower's append: stores the records its primary sent, exactly as sent, each
    /// verified first against the state before it by the audit's own checks (it decodes, follows
    /// the event before it in sequence and time, the rules accept it, its juror's signature
    /// holds, its idempotency key is new, and a checkpoint is signed by the ledger's key over
    /// the root of the events before it and the numbers they give). In slices of
    /// `sliceRecords`, a transaction each: a record that does not verify throws
    /// `LedgerError.unverifiedRecord` and nothing of its slice or after it is stored (the
    /// verified slices before it are). Durable when it returns. An empty ledger takes the
    /// primary's id; a ledger that holds events of another is refused. Returns the elections
    /// the chunk changed.
    public func replicate(_ chunk: RecordChunk, from primary: Primary) throws -> [ElectionID] {
        try replicate(chunk, from: primary, recordByRecord: false)
    }

    /// `replicate`, by the bulk path or by the record-at-a-time path it is tested against.
    func replicate(_ chunk: RecordChunk, from primary: Primary, recordByRecord: Bool) throws -> [ElectionID] {
        func hex(_ id: [UInt8]) -> String { id.withUnsafeBytes { hexString($0) } }
        let adopting = primary.ledgerID != ledgerID
        if adopting {
            guard size == 0, primary.ledgerID.count == 16 else {
                throw LedgerError.unverifiedRecord(seq: chunk.first, reason: "the primary's ledger is \(hex(primary.ledgerID)), and this follower holds \(size) events of ledger \(hex(ledgerID)): it follows another ledger; start the follower on an empty data directory")
            }
        }
        guard chunk.first == size + 1 else {
            throw LedgerError.unverifiedRecord(seq: chunk.first, reason: "the follower holds \(size) events, so the next it takes is event \(size + 1)")
        }
        guard chunk.count > 0 else { return [] }
        // The primary's word, bounded by what a ledger can hold.
        let ahead = Int(min(primary.size > chunk.end - 1 ? primary.size - (chunk.end - 1) : 0, UInt64(Limits.events)))
        if try writer.reserve(chunk.count, ahead: ahead) { try? saveSnapshot(clean: false) }
        let ownID = writer.ledgerID
        writer.ledgerID = primary.ledgerID
        var stored = 0  // slices committed
        do {
            let changed: [ElectionID]
            if recordByRecord {
                let last: Timestamp
                (changed, last) = try env.write("storing \(chunk.count) events from \(chunk.first), as the primary sent them",
                                                beforeRetry: { self.writer.takeBackBatch() }) { txn in
                    if adopting { try txn.put(Array("ledger_id".utf8), primary.ledgerID, in: dbs.meta) }
                    return try self.writer.replicateRecordByRecord(chunk, pinnedKey: primary.pinnedKey, in: txn, dbs)
                }
                writer.endBatch()
                writer.lastTimestamp = last
            } else {
                changed = try replicateInSlices(chunk, from: primary, adopting: adopting, stored: &stored)
            }
            ledgerID = primary.ledgerID
            // A snapshot names the ledger's id: one taken now names the primary's.
            snapshotIfDue(now: adopting)
            return changed
        } catch {
            writer.takeBackBatch()
            if stored > 0 {
                // What was stored is the primary's (its id too), and verified: it stays.
                ledgerID = primary.ledgerID
                snapshotIfDue(now: adopting)
            } else {
                writer.ledgerID = ownID
            }
            if let storeError = error as? StoreError { throw LedgerError.store(storeError) }
            throw error
        }
    }

    /// How many records a follower verifies while the slice before them commits (tests cut
    /// chunks finer).
    var sliceRecords = 8192

    /// `replicate`'s bulk path: the chunk in slices of `sliceRecords`, each verified in memory
    /// (`WriterState.verify`) while the slice before it is written and committed on a thread of
    /// its own, so that LMDB's writes and the disk's flush overlap the checks. Memory runs at
    /// most two slices ahead of the ledger, each in a batch of its own, until the call
    /// returns. When a slice fails (a record does not verify, or its store fails), the slices
    /// before it stay stored (`stored` counts them) and what is not stored is taken back by the
    /// caller.
    private func replicateInSlices(_ chunk: RecordChunk, from primary: Primary, adopting: Bool, stored: inout Int) throws -> [ElectionID] {
        var changed: [ElectionID] = []
        var inFlight: SliceStore?
        func landed(_ store: SliceStore) throws {
            try store.wait()
            writer.endBatch()
            stored += 1
        }
        for start in stride(from: 0, to: chunk.count, by: sliceRecords) {
            let slice: WriterState.VerifiedSlice
            do {
                slice = try writer.verify(chunk, start..<min(start + sliceRecords, chunk.count), pinnedKey: primary.pinnedKey, dbs,
                                          earlier: { try self.reader.record($0) })
            } catch {
                // The slice before it may still land; then it is kept.
                if let store = inFlight { try? landed(store) }
                throw error
            }
            if let store = inFlight {
                inFlight = nil
                try landed(store)
            }
            inFlight = SliceStore(slice, of: chunk, env: env, dbs, ledgerID: adopting && stored == 0 ? primary.ledgerID : nil)
            for id in slice.changed where !changed.contains(id) { changed.append(id) }
        }
        if let store = inFlight { try landed(store) }
        return changed
    }

    /// Throws the stored projections away and writes them again from a replay of every event.
    /// The result is byte-identical to what the incremental path wrote.
    public func rebuildProjections() throws {
        let report = try Audit.verify(reader)
        if options.check != .none, let refusal = WriterState.refusal(report) { throw refusal }
        replays += 1
        var everything = ProjectionChanges()
        for election in report.state.elections {
            everything.note(election.id)
            for start in election.seriesBuckets { everything.note(election.id, bucket: start) }
        }
        do {
            try env.write("rebuilding the projections") { txn in
                try txn.removeAll(in: dbs.projections)
                try txn.removeAll(in: dbs.series)
                try WriterState.writeProjections(of: report.state, everything, in: txn, dbs)
            }
            writer.standingsWritten = [:]   // publishing is for what a submit changed
        } catch let error as StoreError {
            throw LedgerError.store(error)
        }
    }

    // MARK: Opening

    /// Checks the format version, and returns the ledger's id, making one for a ledger that
    /// has none (a new one, or one written before ids).
    private static func checkFormat(_ env: Environment, _ dbs: LedgerDatabases, path: String) throws -> [UInt8] {
        do {
            let (stored, id) = try env.read { txn in
                (try txn.value(forKey: Array("format".utf8), in: dbs.meta), try txn.value(forKey: Array("ledger_id".utf8), in: dbs.meta))
            }
            if let stored, stored != [RecordCodec.formatVersion] {
                throw LedgerError.unsupportedFormat(found: stored.first ?? 0, supported: RecordCodec.formatVersion, at: "the ledger at \(path)")
            }
            if let id, id.count == 16 { return id }
            let fresh = (0..<16).map { _ in UInt8.random(in: 0...255) }
            guard !env.options.readOnly else { return [UInt8](repeating: 0, count: 16) }
            try env.write("recording the format version and the ledger's id") { txn in
                if stored == nil { try txn.put(Array("format".utf8), [RecordCodec.formatVersion], in: dbs.meta) }
                try txn.put(Array("ledger_id".utf8), fresh, in: dbs.meta)
            }
            return fresh
        } catch let error as StoreError {
            throw LedgerError.store(error)
        }
    }

    /// The writer's state: the kept state and the events after it through the audit engine, or
    /// (with no usable kept state) every event into fresh tables; with `.full`, every event
    /// checked first.
    private static func open(_ reader: LedgerReader, kept: KeptState?, ledgerID: [UInt8],
                             options: Options) throws -> (WriterState, Opening) {
        let check = options.check
        let events = try reader.size()
        var start: AuditStart
        var rebuilt: String?
        var keptEvents: UInt64 = 0
        func rebuild(_ reason: String) throws -> AuditStart {
            rebuilt = reason
            keptEvents = 0
            options.rebuilding?(reason)
            return try kept!.fresh(events: events)
        }
        if let kept {
            do {
                let (header, loaded) = try kept.load(
                    ledgerID: ledgerID, events: events,
                    storedRoot: { size in try reader.root(size: size).root },
                    storedFrontier: { size in try reader.frontier(size: size) })
                start = loaded
                keptEvents = header.events
            } catch let rejection as KeptState.Rejection {
                start = try rebuild(rejection.reason)
            }
        } else {
            start = .empty(events: events)
        }
        // A full check of a ledger whose kept state is used: every event replayed apart, into
        // tables of its own, so that a finding leaves the kept state as it was; and the state it
        // ends in must be the one the kept state and its tail give.
        var full: AuditReport?
        if check == .full, keptEvents > 0 {
            let everything = try Audit.verify(reader)
            if let refusal = WriterState.refusal(everything) { throw refusal }
            full = everything
        }
        var report = try Audit.verify(reader, from: start)
        if let full, full.state.image != report.state.image {
            start = try rebuild("the kept state and its tail disagree with a replay of every event")
            report = try Audit.verify(reader, from: start)
        }
        if check != .none, let refusal = WriterState.refusal(report) { throw refusal }
        if check != .none, let last = report.state.lastCheckpoint, last.seq <= keptEvents {
            try checkNewest(last, reader)
        }
        return (WriterState(report, keySeed: start.keySeed, ledgerID: ledgerID),
                Opening(keptEvents: keptEvents, rebuiltBecause: rebuilt, replayedEvents: report.events - keptEvents,
                        findings: report.findings, check: check))
    }

    /// The newest checkpoint, when the kept state covers it (a replay checks those after it):
    /// its signature, and its root against the tree the ledger stores over its events.
    private static func checkNewest(_ last: (seq: UInt64, checkpoint: Checkpoint), _ reader: LedgerReader) throws {
        let checkpoint = last.checkpoint
        guard checkpoint.hasValidSignature else {
            throw LedgerError.corruptRecord(seq: last.seq, reason: "the newest checkpoint's signature does not verify under its key \(checkpoint.publicKey.hex)")
        }
        let stored = try reader.root(size: checkpoint.size).root
        guard stored == checkpoint.root else {
            throw LedgerError.corruptRecord(seq: last.seq, reason: "the newest checkpoint signs root \(checkpoint.root.hex) over \(checkpoint.size) events, but the ledger's stored tree gives \(stored.hex)")
        }
    }

    /// After a durable batch: a snapshot once `snapshotInterval` events have passed since the
    /// last (or `now`). A failure is kept for `keptStateError`, not thrown: the batch is durable.
    private func snapshotIfDue(now: Bool = false) {
        guard now || writer.state.lastSeq - snapshotAt >= options.snapshotInterval else { return }
        do {
            try saveSnapshot(clean: false)
            lastSnapshotError = nil
        } catch {
            lastSnapshotError = "\(error)"
        }
    }

    /// Writes the kept state's snapshot (see `KeptState.save`).
    private func saveSnapshot(clean: Bool) throws {
        guard let kept else { return }
        try kept.save(writer, ledgerID: ledgerID, clean: clean)
        snapshotAt = writer.state.lastSeq
    }

    /// How many times the ledger was replayed: once at open (the events after the kept state),
    /// and once per `rebuildProjections` (tests check that a failed write adds none).
    private(set) var replays = 0
}
