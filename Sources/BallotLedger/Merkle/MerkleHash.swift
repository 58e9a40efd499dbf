import BallotDomain

/// A SHA-256 value: a leaf hash or an interior node of the Merkle tree. (The HMAC and the
/// idempotency index use the same 32-byte type for their SHA-256 output.)
public struct MerkleHash: Hashable, Sendable, CustomStringConvertible {
    public private(set) var bytes: (UInt64, UInt64, UInt64, UInt64)

    public init(_ raw: UnsafeRawBufferPointer) {
        precondition(raw.count == 32, "a Merkle hash is 32 bytes")
        bytes = (raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
                 raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                 raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
                 raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
    }

    /// Parses 64 hex digits.
    public init?(hex: String) {
        let chars = Array(hex.utf8)
        guard chars.count == 64 else { return nil }
        var raw = [UInt8](repeating: 0, count: 32)
        for i in 0..<32 {
            guard let hi = Self.nibble(chars[2 * i]), let lo = Self.nibble(chars[2 * i + 1]) else { return nil }
            raw[i] = hi << 4 | lo
        }
        self = raw.withUnsafeBytes { MerkleHash($0) }
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x61...0x66: c - 0x61 + 10
        case 0x41...0x46: c - 0x41 + 10
        default: nil
        }
    }

    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes(of: bytes) { try body($0) }
    }

    public var hex: String { withBytes { hexString($0) } }
    public var description: String { hex }

    public static func == (l: MerkleHash, r: MerkleHash) -> Bool {
        l.bytes.0 == r.bytes.0 && l.bytes.1 == r.bytes.1 && l.bytes.2 == r.bytes.2 && l.bytes.3 == r.bytes.3
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(bytes.0) }

    // MARK: RFC 6962 / 9162 hashing

    /// The root of the empty tree: SHA-256 of no bytes.
    public static let emptyRoot = SHA256Digester().finalize()

    /// SHA-256(0x00 || record bytes).
    public static func leaf(_ record: UnsafeRawBufferPointer) -> MerkleHash {
        var d = SHA256Digester()
        d.update(0x00)
        d.update(record)
        return d.finalize()
    }

    /// SHA-256(0x01 || left || right).
    public static func node(_ left: MerkleHash, _ right: MerkleHash) -> MerkleHash {
        var d = SHA256Digester()
        d.update(0x01)
        left.withBytes { d.update($0) }
        right.withBytes { d.update($0) }
        return d.finalize()
    }
}
