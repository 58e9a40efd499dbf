import NIOCore
import NIOPosix
import NIOHTTP1
import NIOConcurrencyHelpers

/// A witness's submission prefix (c2sp.org/tlog-witness), `http://HOST[:PORT][/PATH]`:
/// requests go to `<prefix>/add-checkpoint`. Plain HTTP only for now (TLS comes with the
/// daemon's mutual TLS); checked when the policy is read, so a typo stops the start.
struct WitnessURL: Sendable, Equatable, CustomStringConvertible {
    var host: String
    var port: Int
    /// The path before `/add-checkpoint`, without a trailing slash ("" for the root).
    var prefix: String

    init?(_ text: String) {
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

    var description: String { "http://\(host.contains(":") ? "[\(host)]" : host):\(port)\(prefix)" }
}

/// What a witness answered.
struct WitnessHTTPReply: Sendable {
    var status: Int
    var contentType: String?
    var body: [UInt8]
}

enum WitnessHTTPError: Error, CustomStringConvertible {
    case timedOut(seconds: Int64)
    case bodyTooLarge
    case noReply

    var description: String {
        switch self {
        case .timedOut(let s): "no answer within \(s) s"
        case .bodyTooLarge: "its answer was over 64 KB"
        case .noReply: "it closed the connection without an answer"
        }
    }
}

/// POSTs one `add-checkpoint` request with NIO's HTTP/1 client codec, one connection per
/// request (a checkpoint every few minutes needs no pool). The whole exchange is bounded by
/// `timeout`: the connection is closed when it runs out, so that a slow witness costs a
/// checkpoint its cosignature and nothing else.
enum WitnessHTTPClient {
    static let maxReplyBytes = 64 * 1024

    static func addCheckpoint(_ body: [UInt8], to url: WitnessURL, timeout: TimeAmount,
                              group: any EventLoopGroup) async throws -> WitnessHTTPReply {
        // One deadline for the connection and the exchange.
        let deadline = NIODeadline.now() + timeout
        let channel = try await ClientBootstrap(group: group)
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
            // Cancelled (the daemon stops): the connection closes, and the exchange ends.
            return try await withTaskCancellationHandler {
            try await channel.executeThenClose { inbound, outbound in
                var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: url.prefix + "/add-checkpoint")
                let host = url.host.contains(":") ? "[\(url.host)]" : url.host
                head.headers.add(name: "Host", value: url.port == 80 ? host : "\(host):\(url.port)")
                head.headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
                head.headers.add(name: "Content-Length", value: String(body.count))
                head.headers.add(name: "Connection", value: "close")
                try await outbound.write(.head(head))
                try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body))))
                try await outbound.write(.end(nil))
                var reply: WitnessHTTPReply?
                for try await part in inbound {
                    switch part {
                    case .head(let h):
                        reply = WitnessHTTPReply(status: Int(h.status.code), contentType: h.headers.first(name: "Content-Type"), body: [])
                    case .body(var buffer):
                        guard (reply?.body.count ?? 0) + buffer.readableBytes <= maxReplyBytes else { throw WitnessHTTPError.bodyTooLarge }
                        reply?.body += buffer.readBytes(length: buffer.readableBytes) ?? []
                    case .end:
                        guard let reply else { throw WitnessHTTPError.noReply }
                        return reply
                    }
                }
                throw WitnessHTTPError.noReply
            }
            } onCancel: {
                channel.channel.close(promise: nil)
            }
        } catch let error as WitnessHTTPError {
            throw error
        } catch {
            // The deadline closed the connection under the exchange.
            if expired.withLockedValue({ $0 }) { throw WitnessHTTPError.timedOut(seconds: timeout.nanoseconds / 1_000_000_000) }
            throw error
        }
    }
}
