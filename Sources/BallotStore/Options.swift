/// How an environment is opened. The defaults suit a daemon that owns its ledger.
public struct EnvironmentOptions: Sendable {
    /// The map size to start with, in bytes. Rounded up to whole OS pages.
    public var mapSize: Int
    /// The map grows (doubling) when it fills, up to this many bytes; past it a write fails
    /// with `StoreError.Kind.ledgerFull` and nothing from that transaction is written.
    public var maxMapSize: Int
    /// Grow the map before a write transaction once this share of it is in use, so that a
    /// full map mid-transaction (abort, grow, redo) stays rare.
    public var growAtUse: Double
    public var maxDatabases: Int
    public var maxReaders: Int
    /// Open with `MDB_RDONLY`: for auditors reading a copy or a live ledger.
    public var readOnly: Bool
    /// `false` opens with `MDB_NOSYNC`: commits are not flushed. Only for throwaway data.
    public var durable: Bool
    /// Permissions for the files LMDB creates.
    public var fileMode: UInt32
    /// Told the cost of each commit and of each map growth, for metrics; nil for no one.
    public var observer: (any EnvironmentObserver)?

    public init(
        mapSize: Int = 1 << 30,
        maxMapSize: Int = 1 << 40,
        growAtUse: Double = 0.8,
        maxDatabases: Int = 16,
        maxReaders: Int = 126,
        readOnly: Bool = false,
        durable: Bool = true,
        fileMode: UInt32 = 0o600,
        observer: (any EnvironmentObserver)? = nil
    ) {
        self.mapSize = mapSize
        self.maxMapSize = max(mapSize, maxMapSize)
        self.growAtUse = growAtUse
        self.maxDatabases = maxDatabases
        self.maxReaders = maxReaders
        self.readOnly = readOnly
        self.durable = durable
        self.fileMode = fileMode
        self.observer = observer
    }
}

/// Hears what writes cost, on the writing thread, right after the fact: keep it quick.
public protocol EnvironmentObserver: Sendable {
    /// A write transaction's `mdb_txn_commit` returned `ok` after `nanoseconds`: its page writes
    /// and LMDB's two fsyncs (data pages, then the meta page), the part of a commit the disk sets.
    func committed(nanoseconds: UInt64, ok: Bool)
    /// A write was held up `nanoseconds` by growing the map to `mapSize` bytes: the growth itself
    /// and, when the map filled mid-transaction, the aborted attempt and the redo.
    func grewMap(to mapSize: Int, stalledNanoseconds: UInt64)
}

/// A snapshot of `mdb_env_info` and `mdb_env_stat`.
public struct EnvironmentInfo: Sendable, Equatable {
    public var mapSize: Int
    public var pageSize: Int
    /// Bytes of the map in use: (last page number + 1) × page size.
    public var usedBytes: Int
    public var lastTransactionID: Int
    public var readers: Int
    public var maxReaders: Int
}

/// `mdb_put` flags the ledger uses.
public struct PutFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// The key is greater than every key in the database (`MDB_APPEND`); LMDB refuses it otherwise.
    public static let append = PutFlags(rawValue: 0x20000)
}

/// A named database inside an environment. Handles are opened once and shared by all transactions.
public struct Database: Sendable, Hashable, CustomStringConvertible {
    let dbi: UInt32
    public let name: String
    public var description: String { "'\(name)'" }
}
