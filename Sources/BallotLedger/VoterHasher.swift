import Crypto
public import BallotDomain

/// Turns a raw voter identifier (an e-mail, a phone number, a national id) into its `VoterKey`:
/// HMAC-SHA256 under the operator's secret, of the identifier with surrounding whitespace
/// removed and ASCII letters lower-cased. The raw identifier goes no further than this.
public struct VoterHasher: Sendable {
    private let keyed: HMAC<SHA256>

    /// `secret` is the operator's key; at least 16 bytes.
    public init(secret: [UInt8]) throws(LedgerError) {
        guard secret.count >= 16 else {
            throw LedgerError.badFile(path: "voter secret", reason: "the HMAC secret is \(secret.count) bytes; use at least 16 random bytes")
        }
        keyed = HMAC<SHA256>(key: SymmetricKey(data: secret))
    }

    public func key(for voter: String) -> VoterKey {
        var mac = keyed
        mac.update(data: Self.normalizedBytes(voter))
        return mac.finalize().withUnsafeBytes { VoterKey($0) }
    }

    /// Identifiers that differ only in surrounding whitespace or ASCII case are one voter.
    public static func normalize(_ voter: String) -> String {
        String(decoding: normalizedBytes(voter), as: UTF8.self)
    }

    static func normalizedBytes(_ voter: String) -> ArraySlice<UInt8> {
        let utf8 = voter.utf8
        var bytes = [UInt8]()
        bytes.reserveCapacity(utf8.count)
        for b in utf8 { bytes.append(b >= 0x41 && b <= 0x5A ? b | 0x20 : b) }
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || ($0 >= 0x09 && $0 <= 0x0D) }
        let start = bytes.firstIndex { !isSpace($0) } ?? bytes.endIndex
        let end = bytes.lastIndex { !isSpace($0) }.map { $0 + 1 } ?? start
        return bytes[start..<max(start, end)]
    }
}

