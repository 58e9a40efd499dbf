import BallotDomain

/// Appends big-endian integers, IEEE 754 doubles and length-prefixed UTF-8 to a byte buffer,
/// the primitives of the record layout (docs/ledger-format.md, "Payload primitives").
struct ByteWriter {
    var bytes: [UInt8]

    init(capacity: Int = 128) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
    mutating func i32(_ v: Int32) { u32(UInt32(bitPattern: v)) }
    mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    mutating func f64(_ v: Double) { u64(v.bitPattern) }
    mutating func bool(_ v: Bool) { u8(v ? 1 : 0) }
    mutating func raw(_ v: UnsafeRawBufferPointer) { bytes.append(contentsOf: v) }

    /// u16 length, then the UTF-8 bytes. Strings longer than 65,535 bytes are refused upstream.
    mutating func str(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            precondition(utf8.count <= Int(UInt16.max), "string of \(utf8.count) bytes exceeds the format's limit")
            u16(UInt16(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    mutating func slug(_ s: Slug) { str(s.value) }
}

/// Reads what `ByteWriter` wrote, checking every length against the bytes that are there.
struct ByteReader {
    let base: UnsafeRawBufferPointer
    private(set) var offset: Int
    /// Short texts already decoded by this reader's caller, if it keeps them (a pointer: the
    /// caller's table outlives the reader, and is touched by no one else meanwhile).
    let interner: UnsafeMutablePointer<TextInterner>?

    init(_ base: UnsafeRawBufferPointer, offset: Int = 0, interner: UnsafeMutablePointer<TextInterner>? = nil) {
        self.base = base
        self.offset = offset
        self.interner = interner
    }

    var remaining: Int { base.count - offset }

    /// A decoding failure at a byte offset, named by the field being read.
    struct Failure: Error, CustomStringConvertible {
        let offset: Int
        let what: String
        var description: String { "\(what) at byte \(offset)" }
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

    @inline(__always) mutating func u8(_ field: @autoclosure () -> String) throws(Failure) -> UInt8 { try load(UInt8.self, field()) }
    @inline(__always) mutating func u16(_ field: @autoclosure () -> String) throws(Failure) -> UInt16 { try load(UInt16.self, field()) }
    @inline(__always) mutating func u32(_ field: @autoclosure () -> String) throws(Failure) -> UInt32 { try load(UInt32.self, field()) }
    @inline(__always) mutating func u64(_ field: @autoclosure () -> String) throws(Failure) -> UInt64 { try load(UInt64.self, field()) }
    @inline(__always) mutating func i32(_ field: @autoclosure () -> String) throws(Failure) -> Int32 { Int32(bitPattern: try u32(field())) }
    @inline(__always) mutating func i64(_ field: @autoclosure () -> String) throws(Failure) -> Int64 { Int64(bitPattern: try u64(field())) }
    @inline(__always) mutating func f64(_ field: @autoclosure () -> String) throws(Failure) -> Double { Double(bitPattern: try u64(field())) }

    mutating func bool(_ field: @autoclosure () -> String) throws(Failure) -> Bool {
        let at = offset
        switch try u8(field()) {
        case 0: return false
        case 1: return true
        case let v: throw Failure(offset: at, what: "\(field()) is \(v), not 0 or 1")
        }
    }

    mutating func bytes(_ n: Int, _ field: @autoclosure () -> String) throws(Failure) -> UnsafeRawBufferPointer {
        let at = try take(n, field())
        return UnsafeRawBufferPointer(rebasing: base[at..<(at + n)])
    }

    /// A text; one that `repeats` from record to record (a vote's channel) goes through the
    /// interner, if the reader has one.
    mutating func str(_ field: @autoclosure () -> String, repeats: Bool = false) throws(Failure) -> String {
        let n = Int(try u16("length of \(field())"))
        let at = offset
        let raw = try bytes(n, field())
        if repeats, let known = interner?.pointee.known(raw, asIdentifier: false) { return known }
        guard let s = String(utf8Bytes: raw) else {
            throw Failure(offset: at, what: "\(field()) is not valid UTF-8")
        }
        if repeats { interner?.pointee.remember(raw, s, asIdentifier: false) }
        return s
    }

    mutating func slug(_ field: @autoclosure () -> String) throws(Failure) -> Slug {
        let n = Int(try u16("length of \(field())"))
        let at = offset
        let raw = try bytes(n, field())
        if let known = interner?.pointee.known(raw, asIdentifier: true) { return Slug(unchecked: known) }
        guard Slug.isValid(utf8: raw) else {
            throw Failure(offset: at, what: "\(field()) '\(String(decoding: raw, as: UTF8.self))' is not a valid identifier")
        }
        let text = String(decoding: raw, as: UTF8.self)
        interner?.pointee.remember(raw, text, asIdentifier: true)
        return Slug(unchecked: text)
    }
}

/// The short texts that a run of records repeats (election and nominee ids, channels), each
/// checked and made into a String once: bytes equal to ones seen before give that String back
/// without being validated or copied again. An auditor's pass decodes millions of votes that
/// name the same few ids. Holds the last `capacity` texts of up to 16 bytes.
struct TextInterner {
    private struct Entry {
        var length: Int
        var words: (UInt64, UInt64)
        var text: String
        /// Whether the text was also found to be a valid identifier (`Slug`).
        var isIdentifier: Bool
    }

    static let capacity = 16
    private var entries: [Entry] = []
    private var oldest = 0

    /// The String of `raw` if it was remembered (as an identifier, if `asIdentifier`).
    func known(_ raw: UnsafeRawBufferPointer, asIdentifier: Bool) -> String? {
        guard raw.count <= 16 else { return nil }
        let words = Self.words(raw)
        return entries.withUnsafeBufferPointer { entries in
            for i in entries.indices where entries[i].words == words && entries[i].length == raw.count
                && (entries[i].isIdentifier || !asIdentifier) {
                return entries[i].text
            }
            return nil
        }
    }

    /// Remembers that `raw` is `text`, valid UTF-8 (and a valid identifier, if `asIdentifier`).
    mutating func remember(_ raw: UnsafeRawBufferPointer, _ text: String, asIdentifier: Bool) {
        guard raw.count <= 16 else { return }
        let entry = Entry(length: raw.count, words: Self.words(raw), text: text, isIdentifier: asIdentifier)
        if entries.count < Self.capacity {
            entries.append(entry)
        } else {
            entries[oldest] = entry
            oldest = (oldest + 1) % Self.capacity
        }
    }

    private static func words(_ raw: UnsafeRawBufferPointer) -> (UInt64, UInt64) {
        var words: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &words) { $0.copyMemory(from: raw) }
        return words
    }
}
