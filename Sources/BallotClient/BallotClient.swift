public import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Why talking to the daemon failed (as opposed to the daemon refusing a request).
public enum ClientError: Error, CustomStringConvertible {
    /// No daemon could be reached at the socket path.
    case unreachable(String)
    /// The connection failed mid-conversation.
    case connection(String)
    /// The daemon sent something that is not a reply line.
    case protocolViolation(String)

    public var description: String {
        switch self {
        case .unreachable(let m), .connection(let m), .protocolViolation(let m): m
        }
    }
}

/// A blocking client for the daemon: one JSON object per line each way, over its Unix socket or
/// over TCP with mutual TLS (`listen_tls`). Used by `ballotctl`, the benchmarks and the
/// integration tests. Use one from one thread at a time (it may be handed between threads,
/// hence `Sendable`, but its read buffer is not locked).
public final class BallotClient: @unchecked Sendable {
    private let transport: any ClientTransport
    private var buffered: [UInt8] = []

    /// Connects to the Unix socket; a receive timeout of `timeout` seconds (0: none) guards
    /// against a daemon that hangs.
    public init(socketPath: String, timeout: Int = 60) throws {
        transport = try UnixSocketTransport(path: socketPath, timeout: timeout)
    }

    /// Connects over TCP with mutual TLS (`ballotctl --connect tls://HOST:PORT`).
    public init(tls endpoint: TLSEndpoint, timeout: Int = 60) throws {
        transport = try TLSTransport(endpoint, timeout: timeout)
    }

    deinit { transport.close() }

    public func send(raw: [UInt8]) throws { try transport.send(raw) }

    public func send(_ line: String) throws { try send(raw: Array((line + "\n").utf8)) }

    /// Closes the sending side: the daemon still answers what was sent.
    public func finishSending() { transport.finishSending() }

    /// The next reply line, decoded; nil when the daemon closed the connection.
    public func readReply() throws -> [String: Any]? {
        while true {
            if let newline = buffered.firstIndex(of: 0x0A) {
                let line = Array(buffered[..<newline])
                buffered.removeFirst(newline + 1)
                guard let object = try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                    throw ClientError.protocolViolation("the reply is not a JSON object: \(String(decoding: line, as: UTF8.self))")
                }
                return object
            }
            guard try transport.receive(into: &buffered) else { return nil }
        }
    }

    /// Sends a request and returns its reply.
    @discardableResult
    public func call(_ request: [String: Any]) throws -> [String: Any] {
        let data = try JSONSerialization.data(withJSONObject: request)
        try send(raw: Array(data) + [0x0A])
        guard let reply = try readReply() else { throw ClientError.connection("the daemon closed the connection before replying") }
        return reply
    }
}

extension Dictionary where Key == String, Value == Any {
    /// `result` of an ok reply.
    public var result: [String: Any]? { self["result"] as? [String: Any] }
    /// `error.code` of a refusal.
    public var errorCode: String? { (self["error"] as? [String: Any])?["code"] as? String }
    public var isOK: Bool { self["ok"] as? Bool == true }
}
