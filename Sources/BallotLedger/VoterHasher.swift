public import BallotDomain
public import BallotCollections
public import BallotStore
public import BallotFormat
public import BallotAudit

/// Turns a raw voter identifier (an e-mail, a phone number, a national id) into its `VoterKey`:
/// HMAC-SHA256 under the operator's secret. By rules version 1, of the identifier with
/// surrounding whitespace removed and ASCII letters lower-cased; from version 2, of the election
/// and the identifier as `VoterIdentity` normalises it. The raw identifier goes no further.
public struct VoterHasher: Sendable {
    private let keyed: HMACSHA256

    /// `secret` is the operator's key; at least 16 bytes.
    public init(secret: [UInt8]) throws(LedgerError) {
        guard secret.count >= 16 else {
            throw LedgerError.invalidSecret("the voter HMAC secret is \(secret.count) bytes; use at least 16 random bytes")
        }
        keyed = HMACSHA256(key: secret)
    }

    public func key(for voter: String) -> VoterKey {
        var voter = voter
        return voter.withUTF8 { key(forUTF8: UnsafeRawBufferPointer($0)) }
    }

    /// The key for an identifier given as UTF-8 bytes (importers pass a field of a row).
    public func key(forUTF8 raw: UnsafeRawBufferPointer) -> VoterKey {
        VoterKey(Self.normalized(raw) { keyed.authenticate($0) })
    }

    /// The key of an identifier already normalised by its election's rules (version 2 on, see
    /// `VoterIdentity`): HMAC of the election id, a NUL and the identifier, so that one
    /// person's keys in two elections differ and nobody who reads the ledger can link them.
    public func key(normalized voter: String, in election: ElectionID) -> VoterKey {
        var voter = voter
        return voter.withUTF8 { key(normalizedUTF8: UnsafeRawBufferPointer($0), in: election) }
    }

    /// `key(normalized:in:)` of UTF-8 bytes, with no copy but the message on the stack.
    public func key(normalizedUTF8 voter: UnsafeRawBufferPointer, in election: ElectionID) -> VoterKey {
        var id = election.value
        return id.withUTF8 { e in
            withUnsafeTemporaryAllocation(byteCount: e.count + 1 + voter.count, alignment: 1) { message in
                message.baseAddress!.copyMemory(from: e.baseAddress!, byteCount: e.count)
                message[e.count] = 0
                if voter.count > 0 { (message.baseAddress! + e.count + 1).copyMemory(from: voter.baseAddress!, byteCount: voter.count) }
                return VoterKey(keyed.authenticate(UnsafeRawBufferPointer(message)))
            }
        }
    }

    /// Identifiers that differ only in surrounding whitespace (ASCII space, tab, LF, VT, FF, CR)
    /// or in the case of ASCII letters are one voter.
    public static func normalize(_ voter: String) -> String {
        var voter = voter
        return voter.withUTF8 { normalized(UnsafeRawBufferPointer($0)) { String(decoding: $0, as: UTF8.self) } }
    }

    /// Whether the identifier is empty once normalized (nothing but whitespace).
    public static func isBlank(utf8 raw: UnsafeRawBufferPointer) -> Bool {
        trimmed(raw).isEmpty
    }

    @inlinable package static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || (c >= 0x09 && c <= 0x0D) }

    @inlinable package static func trimmed(_ raw: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var start = 0
        var end = raw.count
        while start < end, isSpace(raw[start]) { start += 1 }
        while end > start, isSpace(raw[end - 1]) { end -= 1 }
        return UnsafeRawBufferPointer(rebasing: raw[start..<end])
    }

    /// Lends `raw` with surrounding whitespace removed and ASCII letters lower-cased, copying
    /// (to the stack) only when there is a capital letter to lower. Inlinable, so that the
    /// importer's call is specialized: unspecialized, it instantiated generic metadata on every
    /// row (docs/performance.md).
    @inlinable package static func normalized<R>(_ raw: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        let trimmed = trimmed(raw)
        guard trimmed.contains(where: { $0 &- 0x41 < 26 }) else { return body(trimmed) }
        return withUnsafeTemporaryAllocation(byteCount: trimmed.count, alignment: 1) { lowered in
            for (i, c) in trimmed.enumerated() { lowered[i] = c &- 0x41 < 26 ? c | 0x20 : c }
            return body(UnsafeRawBufferPointer(lowered))
        }
    }
}
