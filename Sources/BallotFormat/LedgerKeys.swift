public import BallotDomain
public import BallotCollections

/// The named LMDB databases of a ledger and how their keys are built (docs/ledger-format.md).
public enum LedgerKeys {
    /// seq (u64 BE) → record bytes.
    public static let events = "events"
    /// last leaf index covered (u64 BE) ‖ level (u8) → 32-byte node hash, for levels ≥ `firstStoredLevel`.
    public static let merkle = "merkle"
    /// Merkle nodes below this level (subtrees of fewer than 16 leaves) are not stored: they are
    /// recomputed from at most 8 consecutive records, which is cheaper than a put per event.
    public static let firstStoredLevel = 4
    /// election id ‖ 0x00 ‖ kind ("tally", "jury", "ranking") → canonical JSON.
    public static let projections = "projections"
    /// election id ‖ 0x00 ‖ bucket start (i64 BE, sign bit flipped) → canonical JSON.
    public static let series = "series"
    /// "format" → format version byte.
    public static let meta = "meta"

    public static func sequence(_ seq: UInt64) -> [UInt8] { withUnsafeBytes(of: seq.bigEndian) { Array($0) } }

    public static func sequence(of key: UnsafeRawBufferPointer) -> UInt64? {
        key.count == 8 ? sequence(unchecked: key) : nil
    }

    /// The sequence number in a key already known to be 8 bytes.
    @inline(__always)
    package static func sequence(unchecked key: UnsafeRawBufferPointer) -> UInt64 {
        UInt64(bigEndian: key.loadUnaligned(as: UInt64.self))
    }

    /// Whether `key` sorts before the key of `seq` in 'events' (LMDB's default order: bytes
    /// compared in turn, a shorter key first where one is a prefix of the other).
    package static func precedes(_ key: UnsafeRawBufferPointer, _ seq: UInt64) -> Bool {
        withUnsafeBytes(of: seq.bigEndian) { bound in
            for i in 0..<min(key.count, 8) where key[i] != bound[i] { return key[i] < bound[i] }
            return key.count < 8
        }
    }

    /// The key of node (`level`, `index`): the index of the last leaf it covers, then the level,
    /// so that nodes are stored in the order they are completed (every put is an append).
    public static func merkleNode(level: Int, index: UInt64) -> [UInt8] {
        withMerkleNodeKey(level: level, index: index) { Array($0) }
    }

    /// Lends the key of node (`level`, `index`) without allocating (the append path).
    package static func withMerkleNodeKey<R>(level: Int, index: UInt64, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let lastLeaf = ((index + 1) << UInt64(level)) &- 1
        var key = (lastLeaf.bigEndian, UInt8(level))
        return try withUnsafeBytes(of: &key) { try body(UnsafeRawBufferPointer(rebasing: $0[0..<9])) }
    }

    public enum ProjectionKind: String, Sendable, CaseIterable {
        case tally, jury, ranking
    }

    public static func projection(_ election: ElectionID, _ kind: ProjectionKind) -> [UInt8] {
        Array(election.value.utf8) + [0] + Array(kind.rawValue.utf8)
    }

    public static func seriesBucket(_ election: ElectionID, _ start: Int64) -> [UInt8] {
        Array(election.value.utf8) + [0] + sequence(UInt64(bitPattern: start) ^ (1 << 63))
    }

    /// The prefix shared by every series key of `election`.
    public static func seriesPrefix(_ election: ElectionID) -> [UInt8] { Array(election.value.utf8) + [0] }
}
