public import BallotDomain

/// Turns a raw voter identifier (an e-mail, a phone number, a national id) into its `VoterKey`:
/// HMAC-SHA256 under the operator's secret, of the identifier with surrounding whitespace
/// removed and ASCII letters lower-cased. The raw identifier goes no further than this.
public struct VoterHasher: Sendable {
    private let keyed: HMACSHA256

    /// `secret` is the operator's key; at least 16 bytes.
    public init(secret: [UInt8]) throws(LedgerError) {
        guard secret.count >= 16 else {
            throw LedgerError.badFile(path: "voter secret", reason: "the HMAC secret is \(secret.count) bytes; use at least 16 random bytes")
        }
        keyed = HMACSHA256(key: secret)
    }

    public func key(for voter: String) -> VoterKey {
        var voter = voter
        return voter.withUTF8 { key(forUTF8: UnsafeRawBufferPointer($0)) }
    }

    /// The key for an identifier given as UTF-8 bytes (importers pass a field of a row).
    public func key(forUTF8 raw: UnsafeRawBufferPointer) -> VoterKey {
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || ($0 >= 0x09 && $0 <= 0x0D) }
        var start = 0
        var end = raw.count
        while start < end, isSpace(raw[start]) { start += 1 }
        while end > start, isSpace(raw[end - 1]) { end -= 1 }
        let trimmed = UnsafeRawBufferPointer(rebasing: raw[start..<end])
        let mac: MerkleHash
        if trimmed.contains(where: { $0 >= 0x41 && $0 <= 0x5A }) {
            let lowered = trimmed.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }
            mac = lowered.withUnsafeBytes { keyed.authenticate($0) }
        } else {
            mac = keyed.authenticate(trimmed)
        }
        return mac.withBytes { VoterKey($0) }
    }

    /// Identifiers that differ only in surrounding whitespace or ASCII case are one voter.
    /// (`key(forUTF8:)` applies the same rule without building a string.)
    public static func normalize(_ voter: String) -> String {
        let utf8 = voter.utf8
        var bytes = [UInt8]()
        bytes.reserveCapacity(utf8.count)
        for b in utf8 { bytes.append(b >= 0x41 && b <= 0x5A ? b | 0x20 : b) }
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || ($0 >= 0x09 && $0 <= 0x0D) }
        let start = bytes.firstIndex { !isSpace($0) } ?? bytes.endIndex
        let end = bytes.lastIndex { !isSpace($0) }.map { $0 + 1 } ?? start
        return String(decoding: bytes[start..<max(start, end)], as: UTF8.self)
    }
}

