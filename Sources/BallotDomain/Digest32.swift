public import BallotCollections

/// 32 bytes of hash output (SHA-256 or HMAC-SHA256), held as four words so that it is compared
/// and copied without allocating. The ledger calls its SHA-256 values `MerkleHash`; a voter's
/// key wraps one.
public struct Digest32: Hashable, Sendable, CustomStringConvertible {
    public let words: (UInt64, UInt64, UInt64, UInt64)

    /// From 32 bytes, in order.
    public init(_ raw: UnsafeRawBufferPointer) {
        precondition(raw.count == 32, "a digest is 32 bytes, not \(raw.count)")
        words = (raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
                 raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                 raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
                 raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
    }

    /// Parses 64 hex digits (either case).
    public init?(hex: String) {
        guard hex.utf8.count == 64, let raw = hexBytes(hex) else { return nil }
        self = raw.withUnsafeBytes { Digest32($0) }
    }

    fileprivate static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x61...0x66: c - 0x61 + 10
        case 0x41...0x46: c - 0x41 + 10
        default: nil
        }
    }

    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes(of: words) { try body($0) }
    }

    /// Lower-case hex of the 32 bytes.
    public var hex: String { withBytes { hexString($0) } }
    public var description: String { hex }

    /// The first 128 bits.
    public var prefix: Key128 { Key128(a: words.0, b: words.1) }

    public static func == (l: Digest32, r: Digest32) -> Bool {
        l.words.0 == r.words.0 && l.words.1 == r.words.1 && l.words.2 == r.words.2 && l.words.3 == r.words.3
    }

    /// The words are already uniformly distributed: one is enough to hash.
    public func hash(into hasher: inout Hasher) { hasher.combine(words.0) }
}

/// The bytes an even number of hex digits (either case) spell; nil for anything else.
public func hexBytes(_ hex: String) -> [UInt8]? {
    let chars = Array(hex.utf8)
    guard chars.count % 2 == 0 else { return nil }
    var raw = [UInt8](repeating: 0, count: chars.count / 2)
    for i in 0..<raw.count {
        guard let hi = Digest32.nibble(chars[2 * i]), let lo = Digest32.nibble(chars[2 * i + 1]) else { return nil }
        raw[i] = hi << 4 | lo
    }
    return raw
}

/// Lower-case hex of `bytes`, written straight into the string's storage (a leaf hash or a
/// vote token is spelled for every published outcome).
public func hexString(_ bytes: UnsafeRawBufferPointer) -> String {
    String(unsafeUninitializedCapacity: bytes.count * 2) { out in
        for (i, b) in bytes.enumerated() {
            out[2 * i] = hexDigit(b >> 4)
            out[2 * i + 1] = hexDigit(b & 0x0F)
        }
        return bytes.count * 2
    }
}

/// The lower-case hex digit of a value below 16.
@inline(__always) func hexDigit(_ nibble: UInt8) -> UInt8 {
    nibble < 10 ? nibble + UInt8(ascii: "0") : nibble - 10 + UInt8(ascii: "a")
}
