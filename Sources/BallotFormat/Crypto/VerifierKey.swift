import FoundationEssentials
public import BallotDomain

/// A verifier key in the vkey form of c2sp.org/signed-note, "<name>+<key ID, 8 hex>+<base64 of
/// the type byte and the public key>": how a log's or a witness's key is written in a policy,
/// on a command line, or printed by `ballot-witness`.
public struct VerifierKey: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    /// `SignedNote.ed25519` for a log's key, `SignedNote.cosignatureV1` for a witness's.
    public var type: UInt8
    public var publicKey: Digest32

    public init(name: String, type: UInt8, publicKey: Digest32) {
        self.name = name
        self.type = type
        self.publicKey = publicKey
    }

    public var keyID: UInt32 { SignedNote.keyID(name: name, type: type, publicKey: publicKey) }

    public var description: String {
        let hex = String(keyID, radix: 16)
        let raw = [type] + publicKey.withBytes { Array($0) }
        return "\(name)+\(String(repeating: "0", count: 8 - hex.count) + hex)+\(Data(raw).base64EncodedString())"
    }

    public struct Malformed: Error, Sendable, CustomStringConvertible {
        public let reason: String
        public var description: String { "not a verifier key: \(reason)" }
    }

    /// Reads a vkey, checking that its key ID is the one its name, type and key give.
    public init(parsing text: String) throws(Malformed) {
        let parts = text.split(separator: "+", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw Malformed(reason: "'\(text.prefix(80))' is not <name>+<key ID>+<base64 key>") }
        let name = String(parts[0])
        guard SignedNote.isKeyName(name) else { throw Malformed(reason: "'\(name.prefix(80))' is not a key name") }
        guard parts[1].utf8.count == 8, let id = UInt32(parts[1], radix: 16) else {
            throw Malformed(reason: "the key ID '\(parts[1].prefix(20))' of \(name) is not 8 hex digits")
        }
        guard let raw = Data(base64Encoded: String(parts[2])), raw.count == 33 else {
            throw Malformed(reason: "the key of \(name) is not the base64 of a type byte and a 32-byte Ed25519 key")
        }
        let bytes = Array(raw)
        guard bytes[0] == SignedNote.ed25519 || bytes[0] == SignedNote.cosignatureV1 else {
            throw Malformed(reason: "the key of \(name) has the type 0x\(String(bytes[0], radix: 16)); known: 0x01 (Ed25519) and 0x04 (cosignature/v1)")
        }
        self.init(name: name, type: bytes[0], publicKey: bytes[1...].withUnsafeBytes { Digest32($0) })
        guard keyID == id else { throw Malformed(reason: "the key ID of \(name) is \(parts[1]), but its name and key give \(String(keyID, radix: 16))") }
    }
}
