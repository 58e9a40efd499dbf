public import BallotDomain
public import BallotCollections

/// Appends big-endian integers, IEEE 754 doubles and length-prefixed UTF-8 to a byte buffer,
/// the primitives of the record layout (docs/ledger-format.md, "Payload primitives").
package struct ByteWriter {
    package var bytes: [UInt8]

    package init(capacity: Int = 128) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    package mutating func u8(_ v: UInt8) { bytes.append(v) }
    package mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
    package mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
    package mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
    package mutating func i32(_ v: Int32) { u32(UInt32(bitPattern: v)) }
    package mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    package mutating func f64(_ v: Double) { u64(v.bitPattern) }
    package mutating func bool(_ v: Bool) { u8(v ? 1 : 0) }
    package mutating func raw(_ v: UnsafeRawBufferPointer) { bytes.append(contentsOf: v) }

    /// u16 length, then the UTF-8 bytes. Strings longer than 65,535 bytes are refused upstream.
    package mutating func str(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            precondition(utf8.count <= Int(UInt16.max), "string of \(utf8.count) bytes exceeds the format's limit")
            u16(UInt16(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    package mutating func slug(_ s: Slug) { str(s.value) }
}

/// Reads what `ByteWriter` wrote, checking every length against the bytes that are there.
package struct ByteReader {
    package let base: UnsafeRawBufferPointer
    private(set) var offset: Int

    package init(_ base: UnsafeRawBufferPointer, offset: Int = 0) {
        self.base = base
        self.offset = offset
    }

    package var remaining: Int { base.count - offset }

    /// A decoding failure at a byte offset, named by the field being read.
    package struct Failure: Error, CustomStringConvertible {
        package let offset: Int
        package let what: String
        package var description: String { "\(what) at byte \(offset)" }
    }

    @inline(__always)
    private mutating func take(_ n: Int, _ field: @autoclosure () -> String) throws(Failure) -> Int {
        guard n <= remaining else {
            throw Failure(offset: offset, what: "\(field()) needs \(n) bytes but only \(remaining) remain")
        }
        defer { offset += n }
        return offset
    }

    @inline(__always)
    private mutating func load<T: FixedWidthInteger>(_: T.Type, _ field: @autoclosure () -> String) throws(Failure) -> T {
        let at = try take(MemoryLayout<T>.size, field())
        return T(bigEndian: base.loadUnaligned(fromByteOffset: at, as: T.self))
    }

    @inline(__always) package mutating func u8(_ field: @autoclosure () -> String) throws(Failure) -> UInt8 { try load(UInt8.self, field()) }
    @inline(__always) package mutating func u16(_ field: @autoclosure () -> String) throws(Failure) -> UInt16 { try load(UInt16.self, field()) }
    @inline(__always) package mutating func u32(_ field: @autoclosure () -> String) throws(Failure) -> UInt32 { try load(UInt32.self, field()) }
    @inline(__always) package mutating func u64(_ field: @autoclosure () -> String) throws(Failure) -> UInt64 { try load(UInt64.self, field()) }
    @inline(__always) package mutating func i32(_ field: @autoclosure () -> String) throws(Failure) -> Int32 { Int32(bitPattern: try u32(field())) }
    @inline(__always) package mutating func i64(_ field: @autoclosure () -> String) throws(Failure) -> Int64 { Int64(bitPattern: try u64(field())) }
    /// A finite double: no number the ledger stores is infinite or NaN (the door checks them),
    /// and a NaN would not even equal itself when read back.
    package mutating func f64(_ field: @autoclosure () -> String) throws(Failure) -> Double {
        let at = offset
        let value = Double(bitPattern: try u64(field()))
        guard value.isFinite else { throw Failure(offset: at, what: "\(field()) is \(value), not a finite number") }
        return value
    }

    package mutating func bool(_ field: @autoclosure () -> String) throws(Failure) -> Bool {
        let at = offset
        switch try u8(field()) {
        case 0: return false
        case 1: return true
        case let v: throw Failure(offset: at, what: "\(field()) is \(v), not 0 or 1")
        }
    }

    package mutating func bytes(_ n: Int, _ field: @autoclosure () -> String) throws(Failure) -> UnsafeRawBufferPointer {
        let at = try take(n, field())
        return UnsafeRawBufferPointer(rebasing: base[at..<(at + n)])
    }

    /// A text: u16 length, then UTF-8.
    package mutating func str(_ field: @autoclosure () -> String) throws(Failure) -> String {
        let (raw, at) = try lengthPrefixed(field())
        return try Text.string(raw, at: at, field())
    }

    /// An identifier: a text that must also be a valid `Slug`.
    package mutating func slug(_ field: @autoclosure () -> String) throws(Failure) -> Slug {
        let (raw, at) = try lengthPrefixed(field())
        try Text.checkIdentifier(raw, at: at, field())
        return Slug(unchecked: String(decoding: raw, as: UTF8.self))
    }

    /// A text's bytes, read but not yet checked, so that a caller that has met the same bytes
    /// before can skip the check (the audit's vote decoding, see `TextCodes`).
    package mutating func text(_ field: StaticString) throws(Failure) -> Text {
        let (raw, at) = try lengthPrefixed("\(field)")
        return Text(raw: raw, at: at, field: field, readable: base.count - at)
    }

    private mutating func lengthPrefixed(_ field: @autoclosure () -> String) throws(Failure) -> (UnsafeRawBufferPointer, at: Int) {
        let n = Int(try u16("length of \(field())"))
        let at = offset
        return (try bytes(n, field()), at)
    }

    /// A text's bytes and where they are, with the checks that make them a String or a Slug.
    package struct Text {
        package let raw: UnsafeRawBufferPointer
        /// Where the bytes start, for the message when they are not what they should be.
        package let at: Int
        package let field: StaticString
        /// How many bytes of the buffer can be read from the text's start (itself and what
        /// follows it); `at` is how many can be read before it. The audit reads a short text in
        /// one whole word where these allow (`Window`).
        package var readable: Int = 0

        package func string() throws(Failure) -> String { try Self.string(raw, at: at, "\(field)") }

        package func identifier() throws(Failure) -> Slug {
            try checkIdentifier()
            return Slug(unchecked: String(decoding: raw, as: UTF8.self))
        }

        package func checkIdentifier() throws(Failure) { try Self.checkIdentifier(raw, at: at, "\(field)") }

        package func checkUTF8() throws(Failure) {
            guard raw.allSatisfy({ $0 < 0x80 }) || String(validating: raw, as: UTF8.self) != nil else {
                throw Failure(offset: at, what: "\(field) is not valid UTF-8")
            }
        }

        package static func string(_ raw: UnsafeRawBufferPointer, at: Int, _ field: @autoclosure () -> String) throws(Failure) -> String {
            guard let s = String(utf8Bytes: raw) else { throw Failure(offset: at, what: "\(field()) is not valid UTF-8") }
            return s
        }

        package static func checkIdentifier(_ raw: UnsafeRawBufferPointer, at: Int, _ field: @autoclosure () -> String) throws(Failure) {
            guard Slug.isValid(utf8: raw) else {
                throw Failure(offset: at, what: "\(field()) '\(String(decoding: raw, as: UTF8.self))' is not a valid identifier")
            }
        }
    }
}
