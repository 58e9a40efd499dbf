public import BallotDomain

/// The result of an op, as the daemon writes it (`json`) and a client reads it back
/// (`init(json:)`): one type for both sides. docs/protocol.md shows each. The election
/// documents (`tally`, `ranking`, `jury`, `election.get`) are the domain's projections and
/// stay `JSONValue`: their form is docs/projections.md's, stored and compared byte for byte.
public protocol OpResult: Sendable, Equatable {
    init(json: JSONValue) throws(ProtocolError)
    var json: JSONValue { get }
}

/// Reads a result's members; each failure names the result and the member.
struct Members {
    let what: String
    let value: JSONValue

    init(_ what: String, _ value: JSONValue) throws(ProtocolError) {
        guard case .object = value else { throw ProtocolError(.internal, "\(what): the result is not an object: \(value.text.prefix(200))") }
        self.what = what
        self.value = value
    }

    func lacks(_ key: String, _ kind: String) -> ProtocolError {
        ProtocolError(.internal, "\(what): the result's '\(key)' is missing or not \(kind): \(value.text.prefix(300))")
    }

    func has(_ key: String) -> Bool { value[key].map { $0 != .null } ?? false }
    func any(_ key: String) -> JSONValue { value[key] ?? .null }

    func int(_ key: String) throws(ProtocolError) -> Int64 {
        guard let i = value[key]?.intValue else { throw lacks(key, "an integer") }
        return i
    }
    func uint(_ key: String) throws(ProtocolError) -> UInt64 {
        guard let i = value[key]?.intValue, i >= 0 else { throw lacks(key, "a count or sequence number") }
        return UInt64(i)
    }
    func string(_ key: String) throws(ProtocolError) -> String {
        guard let s = value[key]?.stringValue else { throw lacks(key, "a string") }
        return s
    }
    func bool(_ key: String) throws(ProtocolError) -> Bool {
        guard let b = value[key]?.boolValue else { throw lacks(key, "true or false") }
        return b
    }
    func digest(_ key: String) throws(ProtocolError) -> Digest32 {
        guard let s = value[key]?.stringValue, let d = Digest32(hex: s) else { throw lacks(key, "a SHA-256 in hex") }
        return d
    }
    func digests(_ key: String) throws(ProtocolError) -> [Digest32] {
        guard let items = value[key]?.arrayValue else { throw lacks(key, "an array") }
        var out: [Digest32] = []
        for item in items {
            guard let s = item.stringValue, let d = Digest32(hex: s) else { throw lacks(key, "an array of SHA-256s in hex") }
            out.append(d)
        }
        return out
    }
    func array(_ key: String) throws(ProtocolError) -> [JSONValue] {
        guard let items = value[key]?.arrayValue else { throw lacks(key, "an array") }
        return items
    }
    func optional<T>(_ key: String, _ read: (String) throws(ProtocolError) -> T) throws(ProtocolError) -> T? {
        has(key) ? try read(key) : nil
    }
}

extension Optional where Wrapped == UInt64 {
    var json: JSONValue { map { .uint($0) } ?? .null }
}
extension Optional where Wrapped == String {
    var json: JSONValue { map { .string($0) } ?? .null }
}
extension Optional where Wrapped == Digest32 {
    var json: JSONValue { map { .string($0.hex) } ?? .null }
}
