public import BallotDomain

/// One line the daemon sends, as both sides see it: the daemon writes it with `bytes`, a client
/// reads it back with `init(parsing:)`.
/// - the reply to a request: `{"id": …, "ok": true, "result": {…}}` or
///   `{"id": …, "ok": false, "error": {"code": "…", "message": "…"}}`;
/// - any other line, before the reply or after it: an import's `progress` and `refused` rows,
///   a subscription's events (docs/protocol.md).
public enum ReplyLine: Sendable, Equatable {
    case ok(id: JSONValue, result: JSONValue)
    case refused(id: JSONValue, ProtocolError)
    case streamed(JSONValue)

    /// The line, newline included.
    public var bytes: [UInt8] {
        var out = json.serialized()
        out.append(UInt8(ascii: "\n"))
        return out
    }

    public var json: JSONValue {
        switch self {
        case .ok(let id, let result):
            .object([("id", id), ("ok", .bool(true)), ("result", result)])
        case .refused(let id, let error):
            .object([("id", id), ("ok", .bool(false)),
                     ("error", .object([("code", .string(error.code.rawValue)), ("message", .string(error.message))]))])
        case .streamed(let value):
            value
        }
    }

    /// Reads a line (without its newline). A code this build does not know is kept in the
    /// message and read as `internal`.
    public init(parsing line: some Collection<UInt8>) throws(ProtocolError) {
        let value: JSONValue
        do {
            value = try Array(line).withUnsafeBytes { bytes in Result { () throws(JSONParser.Failure) -> JSONValue in try JSONParser.parse(bytes) } }.get()
        } catch {
            throw ProtocolError(.internal, "the daemon sent a line that is not JSON (\(error)): \(String(decoding: line.prefix(200), as: UTF8.self))")
        }
        try self.init(value)
    }

    /// Reads a line already parsed.
    public init(_ value: JSONValue) throws(ProtocolError) {
        guard case .object = value else {
            throw ProtocolError(.internal, "the daemon sent a line that is not a JSON object: \(value.text.prefix(200))")
        }
        let id = value["id"] ?? .null
        switch value["ok"] {
        case .bool(true)?:
            self = .ok(id: id, result: value["result"] ?? .null)
        case .bool(false)?:
            guard case .string(let code)? = value["error"]?["code"], case .string(let message)? = value["error"]?["message"] else {
                throw ProtocolError(.internal, "the daemon sent a refusal without an error code and message: \(value.text.prefix(200))")
            }
            self = .refused(id: id, ErrorCode(rawValue: code).map { ProtocolError($0, message) } ?? ProtocolError(.internal, "\(code): \(message)"))
        default:
            self = .streamed(value)
        }
    }

    /// The request's id that a reply echoes (nil for a streamed line).
    public var id: JSONValue? {
        switch self {
        case .ok(let id, _), .refused(let id, _): id
        case .streamed: nil
        }
    }

    /// The member `key` of the whole line: a streamed line's `event`, `refused` or `progress`.
    public subscript(key: String) -> JSONValue? { json[key] }

    public var isOK: Bool {
        if case .ok = self { return true }
        return false
    }

    /// An ok reply's result.
    public var result: JSONValue? {
        if case .ok(_, let result) = self { return result }
        return nil
    }

    /// A refusal's code and message.
    public var refusal: ProtocolError? {
        if case .refused(_, let error) = self { return error }
        return nil
    }

    public var errorCode: ErrorCode? { refusal?.code }

    /// Whether this line answers a request (a streamed line does not).
    public var isReply: Bool {
        if case .streamed = self { return false }
        return true
    }
}

/// The encoders the daemon writes with.
public enum Reply {
    public static func ok(id: JSONValue, result: JSONValue) -> [UInt8] { ReplyLine.ok(id: id, result: result).bytes }

    public static func error(id: JSONValue, code: ErrorCode, message: String) -> [UInt8] {
        ReplyLine.refused(id: id, ProtocolError(code, message)).bytes
    }

    public static func error(id: JSONValue, _ error: ProtocolError) -> [UInt8] { ReplyLine.refused(id: id, error).bytes }

    /// An interim line of a bulk op, before its reply: `{"id": …, "<key>": {…}}`.
    public static func line(id: JSONValue, key: String, _ value: JSONValue) -> [UInt8] {
        ReplyLine.streamed(.object([("id", id), (key, value)])).bytes
    }

    static func line(_ value: JSONValue) -> [UInt8] { ReplyLine.streamed(value).bytes }
}
