public import BallotDomain

/// A strict RFC 8259 parser from UTF-8 bytes straight to `JSONValue`.
///
/// Every request line goes through it. Foundation's `JSONDecoder` with a `Decodable`
/// `JSONValue` took 12 µs for a `vote.cast` line (each scalar was found by trying, and failing,
/// the other kinds first); `JSONSerialization` took 2.2 µs but cannot tell `true` from `1` on
/// Linux. This takes well under that (docs/performance.md). It refuses invalid UTF-8, control
/// characters in strings, leading zeros, trailing commas, anything after the value, and a
/// member name used twice in one object (RFC 8259 leaves what that means to each reader: one
/// took the first, another the last, so neither is taken), and nests at most 64 deep.
public enum JSONParser {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let offset: Int
        public let reason: String
        public var description: String { "\(reason) at byte \(offset)" }
    }

    /// `verbatim`: a member of the top-level object whose value, if a number, is kept as its own
    /// text (`.raw`), so that a request's `id` of 100 digits is echoed as written, not as 1e+100.
    public static func parse(_ bytes: UnsafeRawBufferPointer, verbatim: String? = nil) throws(Failure) -> JSONValue {
        var p = Cursor(bytes: bytes, verbatim: verbatim)
        p.skipSpace()
        let value = try p.value(depth: 0)
        p.skipSpace()
        guard p.i == bytes.count else { throw Failure(offset: p.i, reason: "unexpected content after the value") }
        return value
    }

    public static func parse(_ text: String) throws(Failure) -> JSONValue {
        let bytes = Array(text.utf8)
        let result = bytes.withUnsafeBytes { raw in Result { () throws(Failure) -> JSONValue in try parse(raw) } }
        return try result.get()
    }

    private struct Cursor {
        let bytes: UnsafeRawBufferPointer
        let verbatim: String?
        var i = 0

        func fail(_ reason: String) -> Failure { Failure(offset: i, reason: reason) }

        var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

        mutating func skipSpace() {
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0A || bytes[i] == 0x0D { i += 1 }
        }

        mutating func expect(_ literal: StaticString) throws(Failure) {
            let n = literal.utf8CodeUnitCount
            guard i + n <= bytes.count else { throw fail("truncated literal") }
            for k in 0..<n where bytes[i + k] != literal.utf8Start[k] { throw fail("invalid literal") }
            i += n
        }

        mutating func value(depth: Int) throws(Failure) -> JSONValue {
            guard depth < 64 else { throw fail("nested more than 64 deep") }
            guard let c = peek else { throw fail("expected a value, found the end") }
            switch c {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try expect("true"); return .bool(true)
            case UInt8(ascii: "f"): try expect("false"); return .bool(false)
            case UInt8(ascii: "n"): try expect("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
            default: throw fail("unexpected character")
            }
        }

        mutating func object(depth: Int) throws(Failure) -> JSONValue {
            i += 1
            var members: [(String, JSONValue)] = []
            // Names seen, once the object is large enough that scanning them would cost more:
            // a hostile line of many members then costs linear time, not quadratic.
            var names: Set<String>?
            skipSpace()
            if peek == UInt8(ascii: "}") { i += 1; return .object(members) }
            while true {
                skipSpace()
                guard peek == UInt8(ascii: "\"") else { throw fail("expected a member name") }
                let keyAt = i
                let key = try string()
                skipSpace()
                guard peek == UInt8(ascii: ":") else { throw fail("expected ':'") }
                i += 1
                skipSpace()
                if names == nil && members.count >= 16 { names = Set(members.map(\.0)) }
                let repeated: Bool
                if var seen = names {
                    names = nil   // (unshared while it grows)
                    repeated = !seen.insert(key).inserted
                    names = seen
                } else {
                    repeated = members.contains { $0.0 == key }
                }
                if repeated { throw Failure(offset: keyAt, reason: "the member name '\(key.prefix(64))' is used twice in one object") }
                let valueAt = i
                if depth == 0, key == verbatim, let c = peek, c == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) {
                    _ = try number()
                    members.append((key, .raw(Array(UnsafeRawBufferPointer(rebasing: bytes[valueAt..<i])))))
                } else {
                    members.append((key, try value(depth: depth + 1)))
                }
                skipSpace()
                switch peek {
                case UInt8(ascii: ","): i += 1
                case UInt8(ascii: "}"): i += 1; return .object(members)
                default: throw fail("expected ',' or '}'")
                }
            }
        }

        mutating func array(depth: Int) throws(Failure) -> JSONValue {
            i += 1
            var items: [JSONValue] = []
            skipSpace()
            if peek == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                skipSpace()
                items.append(try value(depth: depth + 1))
                skipSpace()
                switch peek {
                case UInt8(ascii: ","): i += 1
                case UInt8(ascii: "]"): i += 1; return .array(items)
                default: throw fail("expected ',' or ']'")
                }
            }
        }

        mutating func string() throws(Failure) -> String {
            i += 1
            let start = i
            // The common case: no escapes, so the bytes are the string.
            while i < bytes.count, bytes[i] != UInt8(ascii: "\""), bytes[i] != UInt8(ascii: "\\"), bytes[i] >= 0x20 { i += 1 }
            if i < bytes.count, bytes[i] == UInt8(ascii: "\"") {
                defer { i += 1 }
                guard let s = String(validating: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self) else {
                    throw Failure(offset: start, reason: "a string is not valid UTF-8")
                }
                return s
            }
            var out = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[start..<i]))
            while true {
                guard let c = peek else { throw fail("unterminated string") }
                i += 1
                switch c {
                case UInt8(ascii: "\""):
                    guard let s = String(validating: out, as: UTF8.self) else { throw Failure(offset: start, reason: "a string is not valid UTF-8") }
                    return s
                case UInt8(ascii: "\\"):
                    guard let e = peek else { throw fail("unterminated escape") }
                    i += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xD800..<0xDC00).contains(scalar) {
                            guard peek == UInt8(ascii: "\\") else { throw fail("unpaired surrogate") }
                            i += 1
                            guard peek == UInt8(ascii: "u") else { throw fail("unpaired surrogate") }
                            i += 1
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate") }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00..<0xE000).contains(scalar) {
                            throw fail("unpaired surrogate")
                        }
                        out.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8)
                    default: throw fail("invalid escape")
                    }
                default:
                    guard c >= 0x20 else { throw fail("a control character in a string") }
                    out.append(c)
                }
            }
        }

        mutating func hex4() throws(Failure) -> UInt32 {
            guard i + 4 <= bytes.count else { throw fail("truncated \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[i]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                default: throw fail("invalid \\u escape")
                }
                v = v << 4 | d
                i += 1
            }
            return v
        }

        mutating func number() throws(Failure) -> JSONValue {
            let start = i
            if peek == UInt8(ascii: "-") { i += 1 }
            guard let first = peek, first >= 0x30, first <= 0x39 else { throw fail("invalid number") }
            if first == 0x30 {
                i += 1
                if let d = peek, d >= 0x30, d <= 0x39 { throw fail("a number with a leading zero") }
            } else {
                while let d = peek, d >= 0x30, d <= 0x39 { i += 1 }
            }
            var integral = true
            if peek == UInt8(ascii: ".") {
                integral = false
                i += 1
                guard let d = peek, d >= 0x30, d <= 0x39 else { throw fail("invalid fraction") }
                while let d = peek, d >= 0x30, d <= 0x39 { i += 1 }
            }
            if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
                integral = false
                i += 1
                if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { i += 1 }
                guard let d = peek, d >= 0x30, d <= 0x39 else { throw fail("invalid exponent") }
                while let d = peek, d >= 0x30, d <= 0x39 { i += 1 }
            }
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
            if integral, let n = Int64(text) { return .int(n) }
            guard let d = Double(text), d.isFinite else { throw Failure(offset: start, reason: "a number out of range") }
            return .double(d)
        }
    }
}
