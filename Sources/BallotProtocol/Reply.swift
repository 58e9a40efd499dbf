public import BallotDomain

/// Reply lines: `{"id": …, "ok": true, "result": {…}}` or
/// `{"id": …, "ok": false, "error": {"code": "…", "message": "…"}}`, each ending in `\n`.
public enum Reply {
    public static func ok(id: JSONValue, result: JSONValue) -> [UInt8] {
        line(.object([("id", id), ("ok", .bool(true)), ("result", result)]))
    }

    public static func error(id: JSONValue, code: ErrorCode, message: String) -> [UInt8] {
        line(.object([("id", id), ("ok", .bool(false)),
                      ("error", .object([("code", .string(code.rawValue)), ("message", .string(message))]))]))
    }

    public static func error(id: JSONValue, _ error: ProtocolError) -> [UInt8] {
        self.error(id: id, code: error.code, message: error.message)
    }

    /// An interim line of a bulk op, before its reply: `{"id": …, "<key>": {…}}`.
    public static func line(id: JSONValue, key: String, _ value: JSONValue) -> [UInt8] {
        line(.object([("id", id), (key, value)]))
    }

    static func line(_ value: JSONValue) -> [UInt8] {
        var out = value.serialized()
        out.append(UInt8(ascii: "\n"))
        return out
    }
}
