public import NIOCore
import NIOPosix
import NIOHTTP1
import NIOConcurrencyHelpers

/// An `http://HOST[:PORT][/PATH]` address: a witness's submission prefix (c2sp.org/tlog-witness),
/// or a tiles prefix (c2sp.org/tlog-tiles). Plain HTTP only for now (TLS comes with the
/// daemon's mutual TLS); checked where it is configured, so a typo stops the start.
public struct HTTPURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// The path, without a trailing slash ("" for the root).
    public var prefix: String

    public init?(_ text: String) {
        guard text.hasPrefix("http://") else { return nil }
        let rest = text.dropFirst("http://".count)
        let authority = rest.prefix { $0 != "/" }
        var path = String(rest.dropFirst(authority.count))
        while path.hasSuffix("/") { path.removeLast() }
        var host = String(authority)
        var port = 80
        if authority.hasPrefix("[") {
            // [IPv6]:port
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let p = Int(after.dropFirst()) else { return nil }
                port = p
            }
        } else if let colon = authority.lastIndex(of: ":") {
            guard let p = Int(authority[authority.index(after: colon)...]) else { return nil }
            host = String(authority[..<colon])
            port = p
        }
        guard !host.isEmpty, (1...65535).contains(port), !path.contains("?"), !path.contains("#") else { return nil }
        self.host = host
        self.port = port
        self.prefix = path
    }

    public var description: String { "http://\(host.contains(":") ? "[\(host)]" : host):\(port)\(prefix)" }
}

/// What a server answered.
public struct HTTPReply: Sendable {
    public var status: Int
    public var contentType: String?
    public var body: [UInt8]
}

public enum HTTPClientError: Error, CustomStringConvertible {
    case timedOut(seconds: Int64)
    case bodyTooLarge(Int)
    case noReply

    public var description: String {
        switch self {
        case .timedOut(let s): "no answer within \(s) s"
        case .bodyTooLarge(let limit): "its answer was over \(limit) bytes"
        case .noReply: "it closed the connection without an answer"
        }
    }
}

/// One request on one connection, with NIO's HTTP/1 client codec: a checkpoint every few
/// minutes, or a monitor's few tiles, need no pool. The whole exchange (connection included)
/// is bounded by `timeout`, the answer by `maxBytes`; cancelling the task closes the connection.
public enum HTTPClient {
    public enum Method: Sendable { case get, post }

    /// `group` nil: NIO's shared event loops.
    public static func request(_ method: Method, _ url: HTTPURL, path: String, body: [UInt8] = [], timeout: TimeAmount,
                               maxBytes: Int = 64 * 1024, group: (any EventLoopGroup)? = nil) async throws -> HTTPReply {
        let deadline = NIODeadline.now() + timeout
        let channel = try await ClientBootstrap(group: group ?? MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(timeout)
            .connect(host: url.host, port: url.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        let expired = NIOLockedValueBox(false)
        let closing = channel.channel.eventLoop.scheduleTask(deadline: deadline) {
            expired.withLockedValue { $0 = true }
            channel.channel.close(promise: nil)
        }
        defer { closing.cancel() }
        do {
            return try await withTaskCancellationHandler {
                try await channel.executeThenClose { inbound, outbound in
                    var head = HTTPRequestHead(version: .http1_1, method: method == .post ? .POST : .GET, uri: url.prefix + path)
                    let host = url.host.contains(":") ? "[\(url.host)]" : url.host
                    head.headers.add(name: "Host", value: url.port == 80 ? host : "\(host):\(url.port)")
                    if method == .post {
                        head.headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
                        head.headers.add(name: "Content-Length", value: String(body.count))
                    }
                    head.headers.add(name: "Connection", value: "close")
                    if method == .get { head.headers.add(name: "Content-Length", value: "0") }
                    // A server may answer and close as soon as it has read the head (an HTTP/1.0
                    // one does): a write that fails then is not the exchange failing. The answer
                    // is read either way; the write's error counts only if there is none.
                    var parts: [HTTPClientRequestPart] = [.head(head)]
                    if !body.isEmpty { parts.append(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
                    parts.append(.end(nil))
                    var writeError: (any Error)?
                    do { try await outbound.write(contentsOf: parts) } catch { writeError = error }
                    var reply: HTTPReply?
                    for try await part in inbound {
                        switch part {
                        case .head(let h):
                            reply = HTTPReply(status: Int(h.status.code), contentType: h.headers.first(name: "Content-Type"), body: [])
                        case .body(var buffer):
                            guard (reply?.body.count ?? 0) + buffer.readableBytes <= maxBytes else { throw HTTPClientError.bodyTooLarge(maxBytes) }
                            reply?.body += buffer.readBytes(length: buffer.readableBytes) ?? []
                        case .end:
                            guard let reply else { throw writeError ?? HTTPClientError.noReply }
                            return reply
                        }
                    }
                    throw writeError ?? HTTPClientError.noReply
                }
            } onCancel: {
                channel.channel.close(promise: nil)
            }
        } catch let error as HTTPClientError {
            throw error
        } catch {
            // The deadline closed the connection under the exchange.
            if expired.withLockedValue({ $0 }) { throw HTTPClientError.timedOut(seconds: timeout.nanoseconds / 1_000_000_000) }
            throw error
        }
    }
}
