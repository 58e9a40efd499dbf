/// Identifiers are short slugs chosen by administrators (`imdi-2022`, `kinn`, `results`):
/// 1 to 64 bytes of `a-z`, `0-9`, `-`, `_`, `.`, starting with a letter or digit. The names
/// people read (`Kinn`, `Bodø`) are kept separately and may be any Unicode.
public struct Slug: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let value: String

    /// Validates `value`; `what` names the field for the error message.
    public init(_ value: String, what: String) throws(DomainError) {
        guard Slug.isValid(value) else {
            throw DomainError(.badRequest, "\(what) '\(value)' is not a valid identifier: use 1 to 64 characters of a-z, 0-9, '-', '_' or '.', starting with a letter or digit")
        }
        self.value = value
    }

    /// For values already known to be valid (decoded from the ledger, which checks them), and
    /// for tests. Package-only: input from outside goes through the validating initialiser.
    package init(unchecked value: String) { self.value = value }

    public static func isValid(_ value: String) -> Bool {
        let u = value.utf8
        guard (1...64).contains(u.count), let first = u.first, isAlnum(first) else { return false }
        return u.allSatisfy { isAlnum($0) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E }
    }

    private static func isAlnum(_ c: UInt8) -> Bool { (0x61...0x7A).contains(c) || (0x30...0x39).contains(c) }

    public static func < (a: Slug, b: Slug) -> Bool { Array(a.value.utf8).lexicographicallyPrecedes(b.value.utf8) }
    public var description: String { value }
}

public typealias ElectionID = Slug
public typealias NomineeID = Slug
public typealias JurorID = Slug
public typealias CriterionID = Slug

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

/// Who asked for an event: the role the daemon granted and the peer's uid.
public struct Actor: Hashable, Sendable, CustomStringConvertible {
    public enum Role: UInt8, Sendable, CaseIterable, CustomStringConvertible {
        /// The ledger itself (checkpoints, maintenance).
        case system = 0
        case admin = 1
        case juror = 2
        case importer = 3
        case observer = 4

        public var description: String {
            switch self {
            case .system: "system"
            case .admin: "admin"
            case .juror: "juror"
            case .importer: "importer"
            case .observer: "observer"
            }
        }
    }

    public var role: Role
    public var uid: UInt32

    public init(role: Role, uid: UInt32) {
        self.role = role
        self.uid = uid
    }

    public static let system = Actor(role: .system, uid: 0)
    public var description: String { "\(role)(uid \(uid))" }
}
