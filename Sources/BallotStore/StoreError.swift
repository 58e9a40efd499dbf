internal import CLMDB

/// An LMDB failure, with the call that failed, its code, LMDB's own text for the code and what
/// the store was doing at the time (the way `mdb_dump` reports a failure).
public struct StoreError: Error, CustomStringConvertible, Sendable {
    /// The failures callers branch on; everything else is `.other`.
    public enum Kind: Sendable, Equatable {
        /// The map is full (`MDB_MAP_FULL`); the store grows the map and retries by itself.
        case mapFull
        /// The map has reached its configured maximum: the transaction was aborted, nothing written.
        case ledgerFull
        /// The file system holding the environment has no room left: the commit failed (LMDB
        /// reports a short write as EIO), the transaction was aborted, nothing written.
        case storageFull
        /// The disk reported an I/O error (EIO) on a commit's write or sync, with room to
        /// spare: the transaction was aborted and nothing of it is in the ledger (LMDB writes a
        /// commit's pages to free pages, syncs them, and only then the meta page that makes them
        /// part of the ledger), and no commit before it is touched.
        case storageFailed
        case keyExists
        case notFound
        case corrupted
        case versionMismatch
        case readersFull
        /// `MDB_PANIC`: an earlier failure (a meta-page write that did not land) left the
        /// environment unusable; nothing more can be read or written until it is reopened.
        case mustReopen
        case mapResized
        case other
    }

    public let kind: Kind
    /// The LMDB function that failed, for example `mdb_put`.
    public let call: String
    /// LMDB's return code (or an errno value, which LMDB passes through).
    public let code: Int32
    /// `mdb_strerror(code)`.
    public let reason: String
    /// What was being done, in the caller's words: "appending event 42 to 'events'".
    public let context: String

    public init(kind: Kind, call: String, code: Int32, reason: String, context: String) {
        self.kind = kind
        self.call = call
        self.code = code
        self.reason = reason
        self.context = context
    }

    init(call: String, code: Int32, context: String) {
        self.init(kind: Self.kind(of: code), call: call, code: code,
                  reason: String(cString: mdb_strerror(code)), context: context)
    }

    static func kind(of code: Int32) -> Kind {
        switch code {
        case MDB_MAP_FULL: .mapFull
        case MDB_KEYEXIST: .keyExists
        case MDB_NOTFOUND: .notFound
        case MDB_CORRUPTED, MDB_PAGE_NOTFOUND: .corrupted
        case MDB_VERSION_MISMATCH, MDB_INVALID: .versionMismatch
        case MDB_READERS_FULL: .readersFull
        case MDB_PANIC: .mustReopen
        case MDB_MAP_RESIZED: .mapResized
        default: .other
        }
    }

    public var description: String {
        let what = "\(context): \(call) failed: \(reason) (code \(code))"
        return kind == .mustReopen ? what + "; LMDB stopped after an earlier failed write: restart ballotd to reopen the ledger (what was acknowledged is stored)" : what
    }
}

/// Turns an LMDB return code into a thrown `StoreError`. Every LMDB call goes through here.
@inline(__always)
func check(_ code: Int32, _ call: StaticString, _ context: @autoclosure () -> String) throws(StoreError) {
    if code != MDB_SUCCESS {
        throw StoreError(call: "\(call)", code: code, context: context())
    }
}
