import FoundationEssentials
public import BallotDomain
public import NIOCore

/// One request line: `{"id": <any JSON>, "op": "<name>", ...params}`.
public struct Request: Sendable {
    /// Echoed in the reply; `.null` when the client sent none.
    public var id: JSONValue
    public var op: String
    public var fields: [String: JSONValue]

    /// Parses a line. A failure still carries the request's id when it could be read.
    public static func parse(_ line: ByteBuffer) -> Result<Request, RequestFailure> {
        let value: JSONValue
        do {
            value = try line.withUnsafeReadableBytes { bytes in Result { () throws(JSONParser.Failure) -> JSONValue in try JSONParser.parse(bytes, verbatim: "id") } }.get()
        } catch {
            return .failure(RequestFailure(id: .null, error: ProtocolError(.badRequest, "the line is not valid JSON (UTF-8, one object per line): \(error)")))
        }
        guard case .object(let members) = value else {
            return .failure(RequestFailure(id: .null, error: ProtocolError(.badRequest, "a request is a JSON object, like {\"id\": 1, \"op\": \"hello\"}")))
        }
        var fields = Dictionary(members, uniquingKeysWith: { first, _ in first })   // the parser refuses repeated names
        let id = fields.removeValue(forKey: "id") ?? .null
        guard let opValue = fields.removeValue(forKey: "op") else {
            return .failure(RequestFailure(id: id, error: ProtocolError(.badRequest, "the request has no 'op' field")))
        }
        guard case .string(let op) = opValue else {
            return .failure(RequestFailure(id: id, error: ProtocolError(.badRequest, "'op' must be a string")))
        }
        return .success(Request(id: id, op: op, fields: fields))
    }
}

/// A request that could not be parsed, with the id to answer it under.
public struct RequestFailure: Error, Sendable {
    public var id: JSONValue
    public var error: ProtocolError
}

/// Typed access to a request's fields; every failure names the op and the field.
public struct Fields: Sendable {
    public let op: String
    let values: [String: JSONValue]

    public init(_ request: Request) {
        op = request.op
        values = request.fields
    }

    func bad(_ message: String) -> ProtocolError { ProtocolError(.badRequest, "\(op): \(message)") }

    public func has(_ name: String) -> Bool {
        if let v = values[name], v != .null { return true }
        return false
    }

    public func string(_ name: String) throws(ProtocolError) -> String {
        guard let v = values[name] else { throw bad("missing field '\(name)'") }
        guard case .string(let s) = v else { throw bad("field '\(name)' must be a string") }
        return s
    }

    public func optionalString(_ name: String) throws(ProtocolError) -> String? {
        has(name) ? try string(name) : nil
    }

    public func slug(_ name: String) throws(ProtocolError) -> Slug {
        let s = try string(name)
        guard Slug.isValid(s) else { throw bad("field '\(name)' ('\(s)') is not a valid identifier: 1 to 64 of a-z, 0-9, '-', '_', '.'") }
        return Slug(unchecked: s)
    }

    public func int(_ name: String) throws(ProtocolError) -> Int64 {
        guard let v = values[name] else { throw bad("missing field '\(name)'") }
        switch v {
        case .int(let i): return i
        case .double(let d) where d.rounded() == d && abs(d) < 9e15: return Int64(d)
        default: throw bad("field '\(name)' must be an integer")
        }
    }

    public func optionalInt(_ name: String) throws(ProtocolError) -> Int64? {
        has(name) ? try int(name) : nil
    }

    public func number(_ name: String) throws(ProtocolError) -> Double {
        guard let v = values[name] else { throw bad("missing field '\(name)'") }
        switch v {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: throw bad("field '\(name)' must be a number")
        }
    }

    /// A byte count or other size: 0 or more.
    public func size(_ name: String) throws(ProtocolError) -> UInt64 {
        let n = try int(name)
        guard n >= 0 else { throw bad("field '\(name)' must be 0 or more") }
        return UInt64(n)
    }

    public func optionalBool(_ name: String) throws(ProtocolError) -> Bool? {
        guard let v = values[name], v != .null else { return nil }
        guard case .bool(let b) = v else { throw bad("field '\(name)' must be true or false") }
        return b
    }

    public func sequence(_ name: String) throws(ProtocolError) -> UInt64 {
        let n = try int(name)
        guard n >= 1 else { throw bad("field '\(name)' must be a sequence number (1 or more)") }
        return UInt64(n)
    }

    public func time(_ name: String) throws(ProtocolError) -> Timestamp? {
        guard let s = try optionalString(name) else { return nil }
        guard let t = Timestamp(rfc3339: s) else { throw bad("field '\(name)' ('\(s)') is not an RFC 3339 time") }
        return t
    }

    /// A signature as a signed-note signature line carries it: base64 of the key ID (4 bytes)
    /// and an Ed25519 signature (64 bytes).
    public func noteSignature(_ name: String) throws(ProtocolError) -> SentSignature {
        let text = try string(name)
        guard let raw = Data(base64Encoded: text), raw.count == 68 else {
            throw bad("field '\(name)' must be the base64 of a key ID and an Ed25519 signature (68 bytes), as a signed note's signature line has it")
        }
        let bytes = Array(raw)
        return SentSignature(keyID: bytes[0..<4].reduce(0) { $0 << 8 | UInt32($1) }, bytes: Array(bytes[4...]))
    }

    public func object(_ name: String) throws(ProtocolError) -> JSONValue {
        guard let v = values[name] else { throw bad("missing field '\(name)'") }
        guard case .object = v else { throw bad("field '\(name)' must be an object") }
        return v
    }
}
