public import BallotDomain
public import BallotProtocol
import Foundation
import NIOConcurrencyHelpers

/// Why talking to the daemon failed, or what it refused.
public enum ClientError: Error, CustomStringConvertible {
    /// No daemon could be reached at the socket path or address.
    case unreachable(String)
    /// The connection failed mid-conversation.
    case connection(String)
    /// The daemon sent something that is not a reply line, or a result of the wrong form.
    case protocolViolation(String)
    /// The daemon answered `ok: false`.
    case refused(ProtocolError)

    public var description: String {
        switch self {
        case .unreachable(let m), .connection(let m), .protocolViolation(let m): m
        case .refused(let error): error.description
        }
    }
}

/// A blocking client for the daemon on NIO: one JSON object per line each way, over its Unix
/// socket or over TCP with mutual TLS (`listen_tls`). Requests are `Op`s and replies
/// `ReplyLine`s, the types the daemon itself decodes and encodes; results are read with the
/// `OpResult` the daemon wrote them with. Used by `ballotctl`, the benchmarks and the tests.
///
/// One thread reads at a time; another may send meanwhile (an import sends its file while the
/// replies are read).
public final class BallotClient: @unchecked Sendable {
    private let connection: ClientConnection
    /// What has arrived and is not read yet: the bytes from `start` on (the front is dropped
    /// only now and then, so that reading a line costs its own length, not the buffer's).
    private var buffered: [UInt8] = []
    private var start = 0
    private let nextID = NIOLockedValueBox<Int64>(1)

    /// Connects to the Unix socket; a reply (or a send) taking more than `timeout` seconds (0:
    /// no limit) fails, which guards against a daemon that hangs.
    public init(socketPath: String, timeout: Int = 60) throws {
        connection = try ClientConnection(.unix(socketPath), timeout: timeout)
    }

    /// Connects over TCP with mutual TLS (`ballotctl --connect tls://HOST:PORT`).
    public init(tls endpoint: TLSEndpoint, timeout: Int = 60) throws {
        connection = try ClientConnection(.tls(endpoint), timeout: timeout)
    }

    deinit { connection.close() }

    /// Sends bytes as they are: a vote file after `import`'s go-ahead, or lines made by hand.
    public func send(raw: [UInt8]) throws { try connection.send(raw) }

    /// Sends one request line as written (a newline is added).
    public func send(_ line: String) throws { try send(raw: Array((line + "\n").utf8)) }

    /// Sends `op` without waiting for its reply; returns the id it was sent with.
    @discardableResult
    public func send(_ op: Op, idempotencyKey: String? = nil) throws -> JSONValue {
        let id = JSONValue.int(nextID.withLockedValue { n in defer { n += 1 }; return n })
        try send(raw: op.requestLine(id: id, idempotencyKey: idempotencyKey))
        return id
    }

    /// Closes the sending side: the daemon still answers what was sent.
    public func finishSending() { connection.finishSending() }

    /// The next line from the daemon; nil when it closed the connection.
    public func readReply() throws -> ReplyLine? {
        var searched = start
        while true {
            if let newline = buffered[searched...].firstIndex(of: 0x0A) {
                let line = buffered[start..<newline]
                start = newline + 1
                if start > 1 << 16 && start * 2 > buffered.count {
                    buffered.removeFirst(start)
                    start = 0
                }
                do {
                    return try ReplyLine(parsing: line)
                } catch {
                    throw ClientError.protocolViolation(error.message)
                }
            }
            searched = buffered.count
            guard try connection.receive(into: &buffered) else { return nil }
        }
    }

    /// Sends `op` and returns its reply, which must answer it (carry the id it was sent with).
    @discardableResult
    public func call(_ op: Op, idempotencyKey: String? = nil) throws -> ReplyLine {
        let id = try send(op, idempotencyKey: idempotencyKey)
        let reply = try reply()
        // A refusal of a line the daemon could not read carries no id; any other id is the
        // answer to another request: this conversation is out of step.
        guard reply.id == id || (reply.id == .null && !reply.isOK) else {
            connection.close()
            throw ClientError.protocolViolation("\(op.name.rawValue): the reply carries id \(reply.id?.text ?? "none"), not \(id.text): \(reply.json.text.prefix(200))")
        }
        return reply
    }

    /// Sends a request written out by hand (as a test of what the daemon refuses, or `ballotctl
    /// send`) and returns the reply line.
    @discardableResult
    public func call(raw request: JSONValue) throws -> ReplyLine {
        var line = request.serialized()
        line.append(0x0A)
        try send(raw: line)
        return try reply()
    }

    /// Sends `op` and reads its result as `R`; a refusal is thrown as `ClientError.refused`.
    @discardableResult
    public func request<R: OpResult>(_ op: Op, idempotencyKey: String? = nil, as type: R.Type = R.self) throws -> R {
        try result(of: call(op, idempotencyKey: idempotencyKey), as: type)
    }

    /// Sends `op` and returns its result as it is (an election's documents: `tally`, `ranking`,
    /// `jury`, `election.get`); a refusal is thrown as `ClientError.refused`.
    public func document(_ op: Op, idempotencyKey: String? = nil) throws -> JSONValue {
        // `call` returns only the line that answers the request: a result or a refusal.
        let reply = try call(op, idempotencyKey: idempotencyKey)
        if let error = reply.refusal { throw ClientError.refused(error) }
        return reply.result ?? .null
    }

    /// Reads `reply`'s result as `R`; a refusal is thrown as `ClientError.refused`.
    public func result<R: OpResult>(of reply: ReplyLine, as type: R.Type = R.self) throws -> R {
        switch reply {
        case .ok(_, let result):
            do {
                return try R(json: result)
            } catch {
                throw ClientError.protocolViolation(error.message)
            }
        case .refused(_, let error):
            throw ClientError.refused(error)
        case .streamed(let line):
            throw ClientError.protocolViolation("a line came before the reply: \(line.text.prefix(200))")
        }
    }

    private func reply() throws -> ReplyLine {
        guard let reply = try readReply() else { throw ClientError.connection("the daemon closed the connection before replying") }
        return reply
    }
}
