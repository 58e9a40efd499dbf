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

/// A blocking client for the daemon's socket: one JSON object per line each way. Used by
/// `ballotctl`, the benchmarks and the integration tests. Use one from one thread at a time
/// (it may be handed between threads, hence `Sendable`, but its read buffer is not locked).
public final class BallotClient: @unchecked Sendable {
    /// -1 once closed: an initializer that throws after setting every property still runs
    /// `deinit`, which must not close the number again (by then it may be another file's).
    private var fd: Int32
    private var buffered: [UInt8] = []

    /// Connects; a receive timeout of `timeout` seconds guards against a daemon that hangs.
    public init(socketPath: String, timeout: Int = 60) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError.unreachable("socket(): \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketPath.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            closeSocket()
            throw ClientError.unreachable("the socket path \(socketPath) is too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard ok == 0 else {
            let reason = String(cString: strerror(errno))
            closeSocket()
            throw ClientError.unreachable("cannot connect to \(socketPath): \(reason)")
        }
        // Both ways: a daemon that stops reading (a client that does not read its replies) must
        // not block a send for ever either.
        var limit = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    }

    private func closeSocket() {
        if fd >= 0 { close(fd) }
        fd = -1
    }

    deinit { closeSocket() }

    public func send(raw: [UInt8]) throws {
        var offset = 0
        while offset < raw.count {
            // MSG_NOSIGNAL: a daemon that went away is an error here, not a SIGPIPE that kills us.
            let n = raw[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw ClientError.connection("write: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    public func send(_ line: String) throws { try send(raw: Array((line + "\n").utf8)) }

    /// Closes the sending side (`shutdown(SHUT_WR)`): the daemon still answers what was sent.
    public func finishSending() { shutdown(fd, Int32(SHUT_WR)) }

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
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n == 0 { return nil }
            guard n > 0 else { throw ClientError.connection("read: \(String(cString: strerror(errno)))") }
            buffered += chunk[..<n]
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
