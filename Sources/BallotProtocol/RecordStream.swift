public import BallotDomain
public import NIOCore

/// The reply to `replicate`, before its chunks: where the stream starts, which ledger it is,
/// and the Merkle root of the events before `from`, which a follower compares with its own so
/// that it never builds on a history the primary no longer has.
public struct ReplicationStart: OpResult {
    public var from: UInt64
    /// The primary's ledger id (16 bytes), which a follower's ledger takes.
    public var ledgerID: [UInt8]
    public var ledgerSize: UInt64
    /// The root of events 1…`from - 1` (of none: SHA-256 of nothing).
    public var rootBefore: Digest32

    public init(from: UInt64, ledgerID: [UInt8], ledgerSize: UInt64, rootBefore: Digest32) {
        self.from = from
        self.ledgerID = ledgerID
        self.ledgerSize = ledgerSize
        self.rootBefore = rootBefore
    }

    public var json: JSONValue {
        .object([("from", .uint(from)), ("ledger_id", .string(ledgerID.withUnsafeBytes { hexString($0) })),
                 ("ledger_size", .uint(ledgerSize)), ("root_before", .string(rootBefore.hex))])
    }

    public init(json result: JSONValue) throws(ProtocolError) {
        let m = try Members("replicate", result)
        guard let ledgerID = hexBytes(try m.string("ledger_id")), ledgerID.count == 16 else { throw m.lacks("ledger_id", "16 bytes in hex") }
        self.init(from: try m.uint("from"), ledgerID: ledgerID, ledgerSize: try m.uint("ledger_size"), rootBefore: try m.digest("root_before"))
        guard from >= 1 else { throw m.lacks("from", "a sequence number (1 or more)") }
    }
}

/// The line before each chunk of a `replicate` stream: `records` records from event `from`,
/// in `bytes` bytes that follow the line (`RecordChunk`'s wire form), and the primary's size
/// when it sent them. A chunk of no records is a heartbeat: the stream is alive, and the
/// primary holds `ledger_size` events.
public struct ChunkHeader: Sendable, Equatable {
    public var records: Int
    public var from: UInt64
    public var bytes: Int
    public var ledgerSize: UInt64

    /// The most bytes a chunk may announce: a bound on what a peer makes a follower hold. A
    /// primary sends about 1 MiB, or one record that is larger (at most 64 MiB,
    /// `RecordChunk.maxRecordBytes`) and its length.
    public static let maxBytes = (64 << 20) + 4096
    /// The most records a chunk may announce.
    public static let maxRecords = 1 << 20

    public init(records: Int, from: UInt64, bytes: Int, ledgerSize: UInt64) {
        self.records = records
        self.from = from
        self.bytes = bytes
        self.ledgerSize = ledgerSize
    }

    /// The line, with its newline.
    public var line: [UInt8] {
        Reply.line(.object([("records", .int(records)), ("from", .uint(from)), ("bytes", .int(bytes)), ("ledger_size", .uint(ledgerSize))]))
    }

    /// Reads a header line's object; nil when it is not one (another reply line).
    init?(_ value: JSONValue) throws(ProtocolError) {
        guard value["records"] != nil else { return nil }
        guard case .int(let records)? = value["records"], (0...Int64(Self.maxRecords)).contains(records),
              case .int(let from)? = value["from"], from >= 1,
              case .int(let bytes)? = value["bytes"], (0...Int64(Self.maxBytes)).contains(bytes),
              case .int(let size)? = value["ledger_size"], size >= 0 else {
            throw ProtocolError(.badRequest, "replicate: a chunk's line needs 'records' (0 to \(Self.maxRecords)), 'from' (1 or more), 'bytes' (0 to \(Self.maxBytes)) and 'ledger_size': \(String(decoding: value.serialized().prefix(200), as: UTF8.self))")
        }
        guard (records == 0) == (bytes == 0), bytes >= 5 * Int(records) else {
            throw ProtocolError(.badRequest, "replicate: a chunk of \(records) records cannot be \(bytes) bytes")
        }
        self.init(records: Int(records), from: UInt64(from), bytes: Int(bytes), ledgerSize: UInt64(size))
    }
}

/// Splits what a follower reads from its primary into reply lines and chunks: a line, and when
/// the line is a chunk's header, the bytes it announces after it. Nothing here touches a
/// socket; the follower's channel runs it.
public struct RecordStreamDecoder: ByteToMessageDecoder {
    public enum Frame: Sendable, Equatable {
        /// A reply line: the answer to `replicate`, or an error that ends the stream.
        case reply(JSONValue)
        /// A chunk's records (a heartbeat when there are none).
        case chunk(ChunkHeader, wire: [UInt8])
    }
    public typealias InboundOut = Frame

    public let maximumLineBytes: Int
    /// The header whose bytes are awaited.
    private var header: ChunkHeader?

    public init(maximumLineBytes: Int = 1 << 20) {
        self.maximumLineBytes = maximumLineBytes
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try next(&buffer) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }

    /// The next whole frame in `buffer`, consuming it; nil when more bytes are needed.
    public mutating func next(_ buffer: inout ByteBuffer) throws(ProtocolError) -> Frame? {
        if let header {
            guard let wire = buffer.readBytes(length: header.bytes) else { return nil }
            self.header = nil
            return .chunk(header, wire: wire)
        }
        let view = buffer.readableBytesView
        guard let newline = view.firstIndex(of: UInt8(ascii: "\n")) else {
            if view.count > maximumLineBytes { throw ProtocolError(.badRequest, "replicate: a line of more than \(maximumLineBytes) bytes") }
            return nil
        }
        let length = newline - view.startIndex
        guard length <= maximumLineBytes else { throw ProtocolError(.badRequest, "replicate: a line of \(length) bytes; at most \(maximumLineBytes)") }
        let value: JSONValue
        do {
            value = try buffer.withUnsafeReadableBytes { try JSONParser.parse(UnsafeRawBufferPointer(rebasing: $0[..<length])) }
        } catch {
            throw ProtocolError(.badRequest, "replicate: a line that is not JSON: \(error)")
        }
        buffer.moveReaderIndex(forwardBy: length + 1)
        guard let chunk = try ChunkHeader(value) else { return .reply(value) }
        guard chunk.bytes > 0 else { return .chunk(chunk, wire: []) }
        header = chunk
        return try next(&buffer)
    }
}
