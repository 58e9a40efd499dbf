public import NIOCore

/// Splits the byte stream into `\n`-terminated lines (a trailing `\r` is dropped), each at most
/// `maximumLineBytes` long. A longer line is not buffered: its bytes are discarded up to the
/// next newline and it is delivered as `.tooLong`, so the connection can answer it and go on
/// while memory stays bounded.
///
/// After an `import` request is accepted, the next `bulk.remaining` bytes are a file, not lines:
/// they are passed on as `.bytes` as they arrive (see docs/protocol.md).
public struct LineFrameDecoder: ByteToMessageDecoder {
    public enum Frame: Equatable, Sendable {
        case line(ByteBuffer)
        /// A line of `bytes` bytes (at least) that exceeded the limit.
        case tooLong(bytes: Int)
        /// Raw bytes of a bulk transfer.
        case bytes(ByteBuffer)
    }

    /// How many raw bytes to pass on before lines resume. Set by the connection's handler, on
    /// the same event loop, before it tells the client to send.
    public final class Bulk: @unchecked Sendable {
        public var remaining: UInt64 = 0
        public init() {}
    }

    public typealias InboundOut = Frame

    public let maximumLineBytes: Int
    public let bulk: Bulk
    /// Bytes of an oversized line seen so far; non-nil while discarding to its end.
    private var discarding: Int?
    /// Where to resume the search for a newline in the buffer.
    private var scanned = 0

    public init(maximumLineBytes: Int = 1 << 20, bulk: Bulk = Bulk()) {
        self.maximumLineBytes = maximumLineBytes
        self.bulk = bulk
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = next(&buffer) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A half line at EOF is dropped: a request is a complete line.
        if let frame = next(&buffer) {
            context.fireChannelRead(wrapInboundOut(frame))
            return .continue
        }
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .needMoreData
    }

    /// The next complete frame in `buffer`, consuming it; nil when more bytes are needed.
    mutating func next(_ buffer: inout ByteBuffer) -> Frame? {
        if bulk.remaining > 0 {
            let n = Int(min(UInt64(buffer.readableBytes), bulk.remaining))
            guard n > 0 else { return nil }
            bulk.remaining -= UInt64(n)
            return .bytes(buffer.readSlice(length: n)!)
        }
        let view = buffer.readableBytesView
        if let newline = view.dropFirst(scanned).firstIndex(of: UInt8(ascii: "\n")) {
            let length = newline - view.startIndex
            scanned = 0
            if let seen = discarding {
                discarding = nil
                buffer.moveReaderIndex(forwardBy: length + 1)
                return .tooLong(bytes: seen + length)
            }
            if length > maximumLineBytes {
                buffer.moveReaderIndex(forwardBy: length + 1)
                return .tooLong(bytes: length)
            }
            var line = buffer.readSlice(length: length)!
            buffer.moveReaderIndex(forwardBy: 1)
            if line.readableBytesView.last == UInt8(ascii: "\r") { line.moveWriterIndex(to: line.writerIndex - 1) }
            return .line(line)
        }
        // No newline yet: past the limit, drop what is buffered and remember how much.
        if discarding != nil || view.count > maximumLineBytes {
            discarding = (discarding ?? 0) + view.count
            buffer.moveReaderIndex(forwardBy: view.count)
            scanned = 0
        } else {
            scanned = view.count
        }
        return nil
    }
}
