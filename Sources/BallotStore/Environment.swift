internal import CLMDB
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An LMDB environment: one directory holding `data.mdb` and `lock.mdb`.
///
/// Transactions are scoped by closures: `read` and `write` begin one, hand it to the body, and end
/// it when the body returns, so neither a transaction nor the bytes it lends can outlive it.
/// Writers are serialised in-process; a write transaction begins, runs and commits on the calling
/// thread, so call `write` from one dedicated thread, never from async code that may hop threads.
public final class Environment: @unchecked Sendable {
    public let path: String
    public let options: EnvironmentOptions
    private let env: OpaquePointer
    private let pageSize: Int
    /// Held shared by every transaction and exclusively by a map resize (see `ReadWriteLock`).
    private let mapLock = ReadWriteLock()
    /// Keeps this process's writers in line, so a resize never waits behind a queued writer.
    private let writerLock = ReadWriteLock()
    private var isClosed = false

    /// Opens (creating if needed, unless read-only) the environment in directory `path`.
    public init(path: String, options: EnvironmentOptions = .init()) throws(StoreError) {
        self.path = path
        self.options = options
        self.pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        if !options.readOnly, mkdir(path, 0o700) != 0, errno != EEXIST {
            throw StoreError(kind: .other, call: "mkdir", code: errno,
                             reason: String(cString: strerror(errno)),
                             context: "creating the ledger directory \(path)")
        }
        var handle: OpaquePointer?
        try check(mdb_env_create(&handle), "mdb_env_create", "creating an environment for \(path)")
        guard let handle else { preconditionFailure("mdb_env_create succeeded without a handle") }
        do {
            let rounded = (options.mapSize + pageSize - 1) / pageSize * pageSize
            try check(mdb_env_set_mapsize(handle, rounded), "mdb_env_set_mapsize", "setting the map size of \(path)")
            try check(mdb_env_set_maxdbs(handle, MDB_dbi(options.maxDatabases)), "mdb_env_set_maxdbs", "opening \(path)")
            try check(mdb_env_set_maxreaders(handle, UInt32(options.maxReaders)), "mdb_env_set_maxreaders", "opening \(path)")
            // MDB_NOTLS: read transactions are not tied to the thread that began them.
            var flags = UInt32(MDB_NOTLS)
            if options.readOnly { flags |= UInt32(MDB_RDONLY) }
            if !options.durable { flags |= UInt32(MDB_NOSYNC) }
            try check(mdb_env_open(handle, path, flags, mdb_mode_t(options.fileMode)), "mdb_env_open", "opening the ledger at \(path)")
        } catch {
            mdb_env_close(handle)
            throw error
        }
        self.env = handle
        try checkNotTruncated()
        clearStaleReaders()
    }

    // MARK: Readers of processes that died

    /// The time of the last `clearStaleReaders` by a writer.
    private var readersCheckedAt = ContinuousClock.now
    /// How often a writer frees the slots of dead readers (see `clearStaleReaders`).
    static let readerCheckInterval = Duration.seconds(10)

    /// Frees the reader slots of processes that died inside a read transaction (a `ballot-replay`
    /// killed mid-verify): each holds one of the `maxReaders` slots, and pins the pages of the
    /// ledger as it stood, which the writer then cannot reuse. LMDB frees a slot only when asked
    /// (`mdb_reader_check`): at open, when a read finds no free slot, and every
    /// `readerCheckInterval` from the writer. Returns the slots freed.
    @discardableResult
    public func clearStaleReaders() -> Int {
        var dead: Int32 = 0
        return mdb_reader_check(env, &dead) == MDB_SUCCESS ? Int(dead) : 0
    }

    /// A data file shorter than the pages its last transaction uses was cut off (a failed copy,
    /// a full disk). Reading such a page through the map would kill the process with SIGBUS,
    /// so refuse to go on instead.
    private func checkNotTruncated() throws(StoreError) {
        var file = stat()
        guard stat("\(path)/data.mdb", &file) == 0 else { return }
        let needed = try unlockedInfo().usedBytes
        if Int(file.st_size) < needed {
            mdb_env_close(env)
            isClosed = true
            throw StoreError(kind: .corrupted, call: "stat", code: 0,
                             reason: "data.mdb is \(file.st_size) bytes but its last transaction uses \(needed)",
                             context: "opening the ledger at \(path): the file is truncated")
        }
    }

    deinit {
        if !isClosed { mdb_env_close(env) }
    }

    /// Closes the environment. Every transaction must have ended; database handles become invalid.
    public func close() {
        mapLock.withExclusive {
            if !isClosed {
                isClosed = true
                mdb_env_close(env)
            }
        }
    }

    // MARK: Databases

    /// Opens a named database, creating it when `create` is set (which needs a writable environment).
    public func openDatabase(_ name: String, create: Bool = true) throws -> Database {
        let flags = UInt32(create && !options.readOnly ? MDB_CREATE : 0)
        let begin: (OpaquePointer) throws -> MDB_dbi = { txn in
            var dbi = MDB_dbi(0)
            try check(mdb_dbi_open(txn, name, flags, &dbi), "mdb_dbi_open", "opening database '\(name)' in \(self.path)")
            return dbi
        }
        let dbi: MDB_dbi
        if options.readOnly {
            // A handle opened in a read-only transaction outlives it only if that transaction commits.
            dbi = try rawTransaction(readOnly: true, commit: true, context: "opening database '\(name)'", begin)
        } else {
            dbi = try write("opening database '\(name)'") { txn in try begin(txn.txn) }
        }
        return Database(dbi: dbi, name: name)
    }

    // MARK: Transactions

    /// Runs `body` in a read transaction (a consistent snapshot) and ends it when `body` returns.
    public func read<R>(_ body: (borrowing ReadTransaction) throws -> R) throws -> R {
        try rawTransaction(readOnly: true, context: "reading \(path)") { txn in
            try body(ReadTransaction(txn: txn))
        }
    }

    /// Runs `body` in a write transaction and commits when it returns; a throw aborts and writes
    /// nothing. When the map fills, the transaction is aborted, the map grows (doubling, up to
    /// `maxMapSize`), `beforeRetry` runs, and `body` runs again from scratch. `body` must therefore
    /// keep its effects inside the transaction, or undo them in `beforeRetry`, and must let a
    /// `StoreError` propagate as it is. Past `maxMapSize` this throws `.ledgerFull`.
    public func write<R>(
        _ context: @autoclosure () -> String = "write transaction",
        beforeRetry: () throws -> Void = {},
        _ body: (borrowing WriteTransaction) throws -> R
    ) throws -> R {
        try writerLock.withExclusive {
            // The stall: from the write's start to the start of the attempt that succeeds (the
            // growth, and any aborted attempt and the caller's redo before it).
            let started = ContinuousClock.now
            if started - readersCheckedAt > Self.readerCheckInterval {
                readersCheckedAt = started
                clearStaleReaders()
            }
            var grew = try growIfNearlyFull(context())
            var attemptStarted = ContinuousClock.now
            defer {
                if grew, let observer = options.observer, let size = try? info().mapSize {
                    observer.grewMap(to: size, stalledNanoseconds: Self.nanoseconds(attemptStarted - started))
                }
            }
            while true {
                attemptStarted = ContinuousClock.now
                do {
                    return try rawTransaction(readOnly: false, context: context()) { txn in
                        try body(WriteTransaction(txn: txn))
                    }
                } catch let error as StoreError where error.kind == .mapFull {
                    try grow(because: error, context())
                    grew = true
                    try beforeRetry()
                }
            }
        }
    }

    /// Begins a transaction under the shared map lock, runs `body`, and commits it (a read-only
    /// one is just ended, unless `commit` asks to keep database handles it opened). After a failed `mdb_txn_commit` the handle is already freed.
    private func rawTransaction<R>(readOnly: Bool, commit: Bool = false, context: @autoclosure () -> String,
                                   _ body: (OpaquePointer) throws -> R) throws -> R {
        while true {
            let attempt: R? = try mapLock.withShared {
                precondition(!isClosed, "transaction on a closed environment \(path)")
                var txn: OpaquePointer?
                let code = mdb_txn_begin(env, nil, UInt32(readOnly ? MDB_RDONLY : 0), &txn)
                if code == MDB_MAP_RESIZED { return nil }
                // Every slot taken: some may be those of dead processes.
                if code == MDB_READERS_FULL && clearStaleReaders() > 0 { return nil }
                try check(code, "mdb_txn_begin", context())
                guard let txn else { preconditionFailure("mdb_txn_begin succeeded without a handle") }
                let result: R
                do {
                    result = try body(txn)
                } catch {
                    mdb_txn_abort(txn)
                    throw error
                }
                if readOnly && !commit {
                    mdb_txn_abort(txn)
                } else {
                    let started = ContinuousClock.now
                    let code = mdb_txn_commit(txn)
                    if !readOnly { options.observer?.committed(nanoseconds: Self.nanoseconds(ContinuousClock.now - started), ok: code == MDB_SUCCESS) }
                    if code != MDB_SUCCESS, !readOnly, let full = storageFull(code, context()) { throw full }
                    if code == EIO, !readOnly {
                        throw StoreError(kind: .storageFailed, call: "mdb_txn_commit", code: code, reason: String(cString: strerror(code)),
                                         context: "\(context()): the disk holding \(path) reported an I/O error; nothing from this transaction was written")
                    }
                    try check(code, "mdb_txn_commit", context())
                }
                return result
            }
            if let attempt { return attempt }
            // Another process grew the map: adopt its size (needs no transaction open here).
            try mapLock.withExclusive { () throws(StoreError) in
                try check(mdb_env_set_mapsize(env, 0), "mdb_env_set_mapsize", "adopting the map size another process set for \(path)")
            }
        }
    }

    private static func nanoseconds(_ elapsed: Duration) -> UInt64 {
        UInt64(elapsed.components.seconds) * 1_000_000_000 + UInt64(elapsed.components.attoseconds / 1_000_000_000)
    }

    /// A failed commit on a file system with no room left. LMDB passes ENOSPC or EDQUOT
    /// through, but reports a short write as EIO; an EIO is a full disk only while the free
    /// space is below what a commit may need, else it is an I/O error as it says.
    private func storageFull(_ code: Int32, _ context: @autoclosure () -> String) -> StoreError? {
        guard code == ENOSPC || code == EDQUOT || code == EIO else { return nil }
        var fs = statvfs()
        guard statvfs(path, &fs) == 0 else { return nil }
        let free = UInt64(fs.f_bavail) * UInt64(fs.f_frsize)
        let size = UInt64(fs.f_blocks) * UInt64(fs.f_frsize)
        guard code != EIO || free < max(Self.fullBelow, size / 100) else { return nil }
        return StoreError(kind: .storageFull, call: "mdb_txn_commit", code: code, reason: String(cString: strerror(code)),
                          context: "\(context()): the file system holding \(path) is full (\(free) of \(size) bytes free); nothing from this transaction was written")
    }

    /// Free space under which a failed commit is taken for a full disk: more than a batch of
    /// the daemon's ever writes.
    static let fullBelow: UInt64 = 64 << 20

    // MARK: Map size

    /// The map's size and use now.
    public func info() throws -> EnvironmentInfo {
        try mapLock.withShared { () throws(StoreError) in try unlockedInfo() }
    }

    private func unlockedInfo() throws(StoreError) -> EnvironmentInfo {
        var info = MDB_envinfo()
        var stat = MDB_stat()
        try check(mdb_env_info(env, &info), "mdb_env_info", "reading the map size of \(path)")
        try check(mdb_env_stat(env, &stat), "mdb_env_stat", "reading the page size of \(path)")
        let page = Int(stat.ms_psize)
        return EnvironmentInfo(
            mapSize: info.me_mapsize, pageSize: page,
            usedBytes: (info.me_last_pgno + 1) * page,
            lastTransactionID: info.me_last_txnid,
            readers: Int(info.me_numreaders), maxReaders: Int(info.me_maxreaders))
    }

    /// Grows the map ahead of a write once `growAtUse` of it is used; true if it did.
    private func growIfNearlyFull(_ context: @autoclosure () -> String) throws -> Bool {
        let now = try info()
        guard Double(now.usedBytes) >= Double(now.mapSize) * options.growAtUse, now.mapSize < options.maxMapSize else { return false }
        try setMapSize(min(now.mapSize * 2, options.maxMapSize), context())
        return true
    }

    private func grow(because error: StoreError, _ context: @autoclosure () -> String) throws {
        let current = try info().mapSize
        guard current < options.maxMapSize else {
            throw StoreError(
                kind: .ledgerFull, call: error.call, code: error.code, reason: error.reason,
                context: "\(context()): the ledger is full at its maximum map size of \(options.maxMapSize) bytes; nothing from this transaction was written")
        }
        try setMapSize(min(current * 2, options.maxMapSize), context())
    }

    private func setMapSize(_ bytes: Int, _ context: @autoclosure () -> String) throws {
        let rounded = (bytes + pageSize - 1) / pageSize * pageSize
        try mapLock.withExclusive { () throws(StoreError) in
            try check(mdb_env_set_mapsize(env, rounded), "mdb_env_set_mapsize", "\(context()): growing the map to \(rounded) bytes")
        }
    }

    // MARK: Maintenance

    /// Writes a consistent copy of the environment into the existing, empty directory `directory`
    /// while other transactions go on (`mdb_env_copy2`); `compact` omits free pages.
    public func copy(to directory: String, compact: Bool = true) throws {
        try mapLock.withShared { () throws(StoreError) in
            try check(mdb_env_copy2(env, directory, UInt32(compact ? MDB_CP_COMPACT : 0)),
                      "mdb_env_copy2", "copying \(path) to \(directory)")
        }
    }
}
