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

    public static func isValid(_ value: String) -> Bool { isValid(utf8: value.utf8) }

    /// The same check on bytes, before any String is made of them (inlinable, so that it is
    /// specialised where it is called: the ledger runs it for every slug it decodes).
    @inlinable
    public static func isValid(utf8 u: some Collection<UInt8>) -> Bool {
        guard (1...64).contains(u.count), let first = u.first, isAlnum(first) else { return false }
        return u.allSatisfy { isAlnum($0) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E }
    }

    @usableFromInline
    static func isAlnum(_ c: UInt8) -> Bool { (0x61...0x7A).contains(c) || (0x30...0x39).contains(c) }

    public static func < (a: Slug, b: Slug) -> Bool { Array(a.value.utf8).lexicographicallyPrecedes(b.value.utf8) }
    public var description: String { value }
}

public typealias ElectionID = Slug
public typealias NomineeID = Slug
public typealias JurorID = Slug
public typealias CriterionID = Slug
