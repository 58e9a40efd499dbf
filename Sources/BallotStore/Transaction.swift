internal import CLMDB

/// Phantom access modes for `Transaction`.
public enum ReadOnlyAccess {}
public enum ReadWriteAccess {}

public typealias ReadTransaction = Transaction<ReadOnlyAccess>
public typealias WriteTransaction = Transaction<ReadWriteAccess>

/// A transaction lent to a closure by `Environment.read` or `Environment.write`. It cannot be
/// copied or kept: it ends when the closure returns. Bytes it lends (`UnsafeRawBufferPointer`)
/// point into the map and are valid only inside the closure they are passed to.
public struct Transaction<Access>: ~Copyable {
    let txn: OpaquePointer

    init(txn: OpaquePointer) {
        self.txn = txn
    }

    /// Lends the value stored under `key` to `body`, or returns nil when there is none.
    public func withValue<R>(
        forKey key: UnsafeRawBufferPointer, in db: Database,
        _ body: (UnsafeRawBufferPointer) throws -> R
    ) throws -> R? {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val()
        let code = mdb_get(txn, db.dbi, &k, &v)
        if code == MDB_NOTFOUND { return nil }
        try check(code, "mdb_get", "reading a \(key.count)-byte key from \(db)")
        return try body(UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
    }

    /// A copy of the value stored under `key`, or nil.
    public func value(forKey key: [UInt8], in db: Database) throws -> [UInt8]? {
        try key.withUnsafeBytes { k in try withValue(forKey: k, in: db) { Array($0) } }
    }

    /// Visits entries in key order, starting at the first key not less than `start` (or at the
    /// first key), until `body` returns false. A failing cursor call throws: an error never reads
    /// as the end of the data.
    public func forEach(
        in db: Database, from start: [UInt8]? = nil,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        try withCursor(db) { cursor in
            var k = MDB_val()
            var v = MDB_val()
            var code = Self.first(cursor, from: start, &k, &v)
            while code == MDB_SUCCESS {
                let more = try body(UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size),
                                    UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
                if !more { return }
                code = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)
            }
            if code != MDB_NOTFOUND { try check(code, "mdb_cursor_get", "iterating \(db)") }
        }
    }

    /// `forEach`, a run of up to `run` entries at a time: `body` gets them in key order (their
    /// bytes valid until the transaction ends; the buffer listing them only while `body` runs),
    /// and is called once per run, not per entry (a scan of millions of small entries pays for
    /// one closure call and no captured state per entry). The last run may be shorter; `body`
    /// returns false to stop.
    public func forEachRun(
        in db: Database, from start: [UInt8]? = nil, run: Int,
        _ body: (_ entries: UnsafeBufferPointer<(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)>) throws -> Bool
    ) throws {
        precondition(run > 0, "a run of \(run) entries")
        try withUnsafeTemporaryAllocation(of: (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer).self, capacity: run) { entries in
            try withCursor(db) { cursor in
                var k = MDB_val()
                var v = MDB_val()
                var code = Self.first(cursor, from: start, &k, &v)
                var count = 0
                while code == MDB_SUCCESS {
                    entries[count] = (UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size),
                                      UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
                    count += 1
                    if count == run {
                        guard try body(UnsafeBufferPointer(rebasing: entries[..<count])) else { return }
                        count = 0
                    }
                    code = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)
                }
                if code != MDB_NOTFOUND { try check(code, "mdb_cursor_get", "iterating \(db)") }
                if count > 0 { _ = try body(UnsafeBufferPointer(rebasing: entries[..<count])) }
            }
        }
    }

    /// Puts `cursor` on the first key not less than `start` (or the first key), into `k` and `v`.
    private static func first(_ cursor: OpaquePointer, from start: [UInt8]?, _ k: inout MDB_val, _ v: inout MDB_val) -> Int32 {
        guard let start else { return mdb_cursor_get(cursor, &k, &v, MDB_FIRST) }
        return start.withUnsafeBytes { s in
            k = MDB_val(mv_size: s.count, mv_data: UnsafeMutableRawPointer(mutating: s.baseAddress))
            return mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE)
        }
    }

    /// Lends the last entry (greatest key) to `body`, or returns nil when the database is empty.
    public func withLastEntry<R>(
        in db: Database,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> R
    ) throws -> R? {
        try withCursor(db) { cursor in
            var k = MDB_val()
            var v = MDB_val()
            let code = mdb_cursor_get(cursor, &k, &v, MDB_LAST)
            if code == MDB_NOTFOUND { return nil }
            try check(code, "mdb_cursor_get", "finding the last entry of \(db)")
            return try body(UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size),
                            UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
        }
    }

    /// The number of entries in `db` (`mdb_stat`).
    public func entryCount(in db: Database) throws -> Int {
        var stat = MDB_stat()
        try check(mdb_stat(txn, db.dbi, &stat), "mdb_stat", "counting the entries of \(db)")
        return Int(stat.ms_entries)
    }

    private func withCursor<R>(_ db: Database, _ body: (OpaquePointer) throws -> R) throws -> R {
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(txn, db.dbi, &cursor), "mdb_cursor_open", "opening a cursor on \(db)")
        guard let cursor else { preconditionFailure("mdb_cursor_open succeeded without a handle") }
        defer { mdb_cursor_close(cursor) }
        return try body(cursor)
    }
}

extension Transaction where Access == ReadWriteAccess {
    /// Stores `value` under `key`.
    public func put(
        _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, in db: Database,
        flags: PutFlags = [], _ context: @autoclosure () -> String = ""
    ) throws {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        try check(mdb_put(txn, db.dbi, &k, &v, flags.rawValue), "mdb_put", Self.describe(context(), key, db))
    }

    /// Stores `value` under `key` (array convenience).
    public func put(_ key: [UInt8], _ value: [UInt8], in db: Database, flags: PutFlags = [],
                    _ context: @autoclosure () -> String = "") throws {
        try key.withUnsafeBytes { k in
            try value.withUnsafeBytes { v in try put(k, v, in: db, flags: flags, context()) }
        }
    }

    /// Deletes `key`; returns false when it was not there.
    @discardableResult
    public func delete(_ key: [UInt8], in db: Database) throws -> Bool {
        try key.withUnsafeBytes { kb in
            var k = MDB_val(mv_size: kb.count, mv_data: UnsafeMutableRawPointer(mutating: kb.baseAddress))
            let code = mdb_del(txn, db.dbi, &k, nil)
            if code == MDB_NOTFOUND { return false }
            try check(code, "mdb_del", "deleting a \(kb.count)-byte key from \(db)")
            return true
        }
    }

    /// Deletes every entry of `db`, keeping the database itself (`mdb_drop` with 0).
    public func removeAll(in db: Database) throws {
        try check(mdb_drop(txn, db.dbi, 0), "mdb_drop", "emptying \(db)")
    }

    private static func describe(_ context: String, _ key: UnsafeRawBufferPointer, _ db: Database) -> String {
        context.isEmpty ? "writing a \(key.count)-byte key to \(db)" : context
    }
}
