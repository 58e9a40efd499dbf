/// The keyed hash (HMAC-SHA256 under the operator's secret) of a voter's identifier. The raw
/// identifier is never stored; this is enough to refuse a second vote.
public struct VoterKey: Hashable, Sendable {
    public let bytes: (UInt64, UInt64, UInt64, UInt64)

    /// From the 32 bytes of the HMAC, in order.
    public init(_ raw: UnsafeRawBufferPointer) {
        precondition(raw.count == 32, "a voter key is 32 bytes")
        bytes = (raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
                 raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                 raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
                 raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
    }

    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes(of: bytes) { try body($0) }
    }

    /// Lower-case hex of the 32 bytes.
    public var hex: String { withBytes { hexString($0) } }

    /// The first 128 bits, which is what the in-memory duplicate check keeps per voter (half
    /// the memory; the chance of any collision among 10^9 voters is below 10^-20).
    public var prefix: Key128 { Key128(a: bytes.0, b: bytes.1) }

    public static func == (l: VoterKey, r: VoterKey) -> Bool {
        l.bytes.0 == r.bytes.0 && l.bytes.1 == r.bytes.1 && l.bytes.2 == r.bytes.2 && l.bytes.3 == r.bytes.3
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(bytes.0) }
}

/// Lower-case hex of `bytes`.
public func hexString(_ bytes: UnsafeRawBufferPointer) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    out.reserveCapacity(bytes.count * 2)
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 0x0F)])
    }
    return String(decoding: out, as: UTF8.self)
}
