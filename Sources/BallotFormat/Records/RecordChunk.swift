/// A run of consecutive stored records, exactly as stored, as a primary sends them to a follower
/// (`replicate`, docs/protocol.md): each record's length (4 bytes, big-endian), then its bytes.
/// One array for the whole run, so that thousands of records are one allocation each way.
public struct RecordChunk: Sendable, Equatable {
    /// The sequence number of the first record.
    public let first: UInt64
    /// The records in their wire form.
    public private(set) var wire: [UInt8] = []
    /// Where each record's bytes lie in `wire`.
    private var starts: [Int] = []
    private var ends: [Int] = []

    /// The most bytes one record may have on the wire: a bound on what a hostile peer makes a
    /// follower hold, far above the largest records (a checkpoint signs a digest of every
    /// election: about 140 bytes each, for up to 65,535 elections).
    public static let maxRecordBytes = 64 << 20

    /// An empty chunk, to which records from `first` on are appended.
    public init(first: UInt64) {
        self.first = first
    }

    public var count: Int { starts.count }
    /// The sequence number after the last record.
    public var end: UInt64 { first + UInt64(count) }

    /// Appends the next record's bytes.
    public mutating func append(_ record: UnsafeRawBufferPointer) {
        withUnsafeBytes(of: UInt32(record.count).bigEndian) { wire.append(contentsOf: $0) }
        starts.append(wire.count)
        wire.append(contentsOf: record)
        ends.append(wire.count)
    }

    /// Appends the records of `next`, which must start where this chunk ends.
    public mutating func append(contentsOf next: RecordChunk) {
        precondition(next.first == end, "chunk from \(next.first) appended to one that ends before \(end)")
        let offset = wire.count
        wire.append(contentsOf: next.wire)
        starts.append(contentsOf: next.starts.lazy.map { $0 + offset })
        ends.append(contentsOf: next.ends.lazy.map { $0 + offset })
    }

    /// Reads the wire form of `count` records from `first`: every length must be in bounds, and
    /// no byte may be left over.
    public init(first: UInt64, count: Int, wire: [UInt8]) throws(ChunkError) {
        self.first = first
        self.wire = wire
        starts.reserveCapacity(count)
        ends.reserveCapacity(count)
        var at = 0
        for i in 0..<count {
            guard wire.count - at >= 4 else {
                throw ChunkError("the chunk from event \(first) ends inside the length of record \(i + 1) of \(count) (event \(first + UInt64(i)))")
            }
            let length = Int(wire[at]) << 24 | Int(wire[at + 1]) << 16 | Int(wire[at + 2]) << 8 | Int(wire[at + 3])
            at += 4
            guard length > 0, length <= Self.maxRecordBytes, wire.count - at >= length else {
                throw ChunkError("event \(first + UInt64(i)) in the chunk from event \(first) claims \(length) bytes, with \(wire.count - at) left in the chunk (at most \(Self.maxRecordBytes) a record)")
            }
            starts.append(at)
            at += length
            ends.append(at)
        }
        guard at == wire.count else {
            throw ChunkError("the chunk from event \(first) holds \(wire.count - at) bytes after its \(count) records")
        }
    }

    /// Lends the bytes of record `i` (event `first + i`).
    public func withRecord<R>(_ i: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try wire.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[starts[i]..<ends[i]])) }
    }

    /// Lends the bytes of the records at `positions` (all of them by default) at once, each
    /// with its sequence number.
    public func withRecords<R>(_ positions: Range<Int>? = nil,
                               _ body: ([(seq: UInt64, bytes: UnsafeRawBufferPointer)]) throws -> R) rethrows -> R {
        try wire.withUnsafeBytes { all in
            try body((positions ?? 0..<count).map { i in (first + UInt64(i), UnsafeRawBufferPointer(rebasing: all[starts[i]..<ends[i]])) })
        }
    }

    /// Why a chunk's wire form cannot be read.
    public struct ChunkError: Error, Sendable, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }
}

extension LedgerReader {
    /// The stored records from `first` on, as they are stored: at most `maxRecords`, and no more
    /// once `maxBytes` are gathered (at least one record when there is one). A missing event
    /// (a gap in the keys) throws `LedgerError.corruptRecord`: a follower must get every event.
    public func chunk(from first: UInt64, maxRecords: Int, maxBytes: Int) throws -> RecordChunk {
        var chunk = RecordChunk(first: first)
        var next = first
        try scan(from: first, chunk: maxRecords) { seq, bytes, _ in
            guard seq == next else {
                throw LedgerError.corruptRecord(seq: next, reason: "event \(next) is missing: the next stored event is \(seq)")
            }
            chunk.append(bytes)
            next += 1
            return chunk.count < maxRecords && chunk.wire.count < maxBytes
        }
        return chunk
    }
}
