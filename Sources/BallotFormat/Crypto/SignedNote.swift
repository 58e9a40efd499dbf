import FoundationEssentials
import Crypto
public import BallotDomain
public import BallotCollections

/// A signed note (c2sp.org/signed-note): a UTF-8 text ending in a newline, a blank line, then
/// one or more signature lines, "— <key name> base64(key ID ‖ signature)". What the
/// transparency-log tools speak: a checkpoint (`CheckpointNote`) is a note, and witnesses add
/// their cosignatures to it as more lines.
public struct SignedNote: Sendable, Equatable {
    public struct Signature: Sendable, Equatable {
        public var name: String
        /// The first four bytes, big-endian: which key (with `name`) made it.
        public var keyID: UInt32
        /// The bytes after the key ID: the signature itself (Ed25519: 64 bytes; a
        /// cosignature: a timestamp and 64 bytes).
        public var bytes: [UInt8]

        public init(name: String, keyID: UInt32, bytes: [UInt8]) {
            self.name = name
            self.keyID = keyID
            self.bytes = bytes
        }

        public var line: String {
            var raw = withUnsafeBytes(of: keyID.bigEndian) { Array($0) }
            raw += bytes
            return "— \(name) \(Data(raw).base64EncodedString())\n"
        }
    }

    /// The text, with its final newline.
    public var text: String
    public var signatures: [Signature]

    /// The most signature lines a note may carry here (as Go's `note.Open`); the spec asks for
    /// at least 16.
    public static let maxSignatures = 100
    /// The most bytes of a note here: a checkpoint with 64 Ed25519 signatures is under 8 KB.
    public static let maxBytes = 64 * 1024

    public init(text: String, signatures: [Signature]) {
        self.text = text
        self.signatures = signatures
    }

    /// The note as it is sent and stored: text, blank line, signature lines.
    public var serialized: String { text + "\n" + signatures.map(\.line).joined() }

    /// Why a note could not be read.
    public struct Malformed: Error, Sendable, CustomStringConvertible {
        public let reason: String
        public var description: String { "not a signed note: \(reason)" }
    }

    /// Reads a note, checking its form (not its signatures: see `verifies`).
    public init(parsing bytes: [UInt8]) throws(Malformed) {
        guard bytes.count <= Self.maxBytes else { throw Malformed(reason: "it is \(bytes.count) bytes; at most \(Self.maxBytes)") }
        guard String(validating: bytes, as: UTF8.self) != nil else { throw Malformed(reason: "it is not UTF-8") }
        if let bad = bytes.first(where: { $0 < 0x20 && $0 != 0x0A }) {
            throw Malformed(reason: "it holds the control character 0x\(String(bad, radix: 16))")
        }
        guard bytes.last == 0x0A else { throw Malformed(reason: "it does not end in a newline") }
        // The text ends at the last blank line: every line after it is a signature.
        guard let blank = (0..<max(bytes.count - 1, 0)).last(where: { bytes[$0] == 0x0A && bytes[$0 + 1] == 0x0A }) else {
            throw Malformed(reason: "it has no blank line between its text and its signatures")
        }
        text = String(decoding: bytes[...blank], as: UTF8.self)
        let lines = bytes[(blank + 2)...].split(separator: 0x0A, omittingEmptySubsequences: false).dropLast()
        guard !lines.isEmpty else { throw Malformed(reason: "it has no signature lines") }
        guard lines.count <= Self.maxSignatures else { throw Malformed(reason: "it has \(lines.count) signature lines; at most \(Self.maxSignatures)") }
        signatures = []
        for (i, raw) in lines.enumerated() {
            // Split on the space byte, as Go does: a space followed by a combining mark is one
            // Character in Swift, and would hide the split.
            let parts = raw.split(separator: 0x20, omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0].elementsEqual("—".utf8) else {
                throw Malformed(reason: "signature line \(i + 1) is not \"— <name> <base64>\": \(String(decoding: raw, as: UTF8.self).prefix(80))")
            }
            let name = String(decoding: parts[1], as: UTF8.self)
            guard Self.isKeyName(name) else { throw Malformed(reason: "signature line \(i + 1) has the key name \"\(name.prefix(80))\"") }
            guard let decoded = Data(base64Encoded: String(decoding: parts[2], as: UTF8.self)), decoded.count > 4 else {
                throw Malformed(reason: "signature line \(i + 1) (\(name)) is not base64 of a key ID and a signature")
            }
            let bytes = Array(decoded)
            signatures.append(Signature(name: name, keyID: bytes[0..<4].reduce(0) { $0 << 8 | UInt32($1) }, bytes: Array(bytes[4...])))
        }
    }

    /// A key name: not empty, no Unicode spaces, no plus.
    public static func isKeyName(_ name: String) -> Bool {
        !name.isEmpty && !name.unicodeScalars.contains { $0 == "+" || $0.properties.isWhitespace }
    }

    /// The key ID of a key: the first four bytes (big-endian) of SHA-256(name ‖ 0x0A ‖ type ‖ key).
    public static func keyID(name: String, type: UInt8, publicKey: Digest32) -> UInt32 {
        var d = SHA256Digester()
        Array(name.utf8).withUnsafeBytes { d.update($0) }
        d.update(0x0A)
        d.update(type)
        publicKey.withBytes { d.update($0) }
        return d.finalize().withBytes { b in b.prefix(4).reduce(0) { $0 << 8 | UInt32($1) } }
    }

    /// The signature type of an Ed25519 note signature (signed-note), and of a timestamped
    /// Ed25519 cosignature (tlog-cosignature).
    public static let ed25519: UInt8 = 0x01
    public static let cosignatureV1: UInt8 = 0x04

    /// An Ed25519 signature of `text` by `key`, named `name`.
    static func sign(_ text: String, name: String, key: CheckpointKey) -> Signature {
        Signature(name: name, keyID: keyID(name: name, type: ed25519, publicKey: key.publicKey), bytes: key.sign(Array(text.utf8)))
    }

    /// Whether a signature line of `name` and `publicKey`'s ID is here and verifies over the
    /// text: nil when there is no such line (signatures of other keys are ignored, as the spec
    /// says), false when there is one that does not verify.
    public func verifies(name: String, publicKey: Digest32) -> Bool? {
        let id = Self.keyID(name: name, type: Self.ed25519, publicKey: publicKey)
        guard let line = signatures.first(where: { $0.name.utf8.elementsEqual(name.utf8) && $0.keyID == id }) else { return nil }
        return Self.ed25519Verifies(line.bytes, over: Array(text.utf8), publicKey: publicKey)
    }

    package static func ed25519Verifies(_ signature: [UInt8], over message: [UInt8], publicKey: Digest32) -> Bool {
        guard signature.count == 64,
              let key = publicKey.withBytes({ try? Curve25519.Signing.PublicKey(rawRepresentation: $0) }) else { return false }
        return key.isValidSignature(signature, for: message)
    }
}

// MARK: Cosignatures (c2sp.org/tlog-cosignature, the timestamped Ed25519 form)

extension SignedNote {
    /// What a v1 cosignature signs: "cosignature/v1", the time, then the note's text.
    static func cosignedMessage(_ text: String, timestamp: UInt64) -> [UInt8] {
        Array("cosignature/v1\ntime \(timestamp)\n\(text)".utf8)
    }

    /// A witness's cosignature of `text`, at `timestamp` (seconds since 1970): key ID of type
    /// 0x04, then the timestamp (u64, big-endian) and the Ed25519 signature.
    public static func cosign(_ text: String, name: String, key: CheckpointKey, timestamp: UInt64) -> Signature {
        let id = keyID(name: name, type: cosignatureV1, publicKey: key.publicKey)
        var bytes = withUnsafeBytes(of: timestamp.bigEndian) { Array($0) }
        bytes += key.sign(cosignedMessage(text, timestamp: timestamp))
        return Signature(name: name, keyID: id, bytes: bytes)
    }

    /// The time of the cosignature by the witness `name` with `publicKey` when one is here and
    /// verifies; nil when there is none (another key's lines are ignored); `.failure` when one
    /// is here and does not verify.
    public func cosignature(name: String, publicKey: Digest32) -> Result<UInt64, CosignatureFailure>? {
        let id = Self.keyID(name: name, type: Self.cosignatureV1, publicKey: publicKey)
        guard let line = signatures.first(where: { $0.name.utf8.elementsEqual(name.utf8) && $0.keyID == id }) else { return nil }
        guard line.bytes.count == 8 + 64 else { return .failure(CosignatureFailure(name: name, reason: "it is \(line.bytes.count) bytes, not 72")) }
        let timestamp = line.bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard timestamp < 1 << 63 else { return .failure(CosignatureFailure(name: name, reason: "its timestamp \(timestamp) is past 2^63 - 1")) }
        guard Self.ed25519Verifies(Array(line.bytes[8...]), over: Self.cosignedMessage(text, timestamp: timestamp), publicKey: publicKey) else {
            return .failure(CosignatureFailure(name: name, reason: "its Ed25519 signature does not verify"))
        }
        return .success(timestamp)
    }

    public struct CosignatureFailure: Error, Sendable, Equatable, CustomStringConvertible {
        public let name: String
        public let reason: String
        public var description: String { "the cosignature of \(name): \(reason)" }
    }
}

/// The text of a checkpoint note (c2sp.org/tlog-checkpoint): the origin, the tree size in
/// decimal, the root in base64, each on its own line; no extension lines (the spec advises
/// against them: the election digests stay in the ledger's checkpoint event).
public struct CheckpointNote: Sendable, Equatable {
    public var origin: String
    public var size: UInt64
    public var root: Digest32

    public init(origin: String, size: UInt64, root: Digest32) {
        self.origin = origin
        self.size = size
        self.root = root
    }

    public var text: String { "\(origin)\n\(size)\n\(root.withBytes { Data($0).base64EncodedString() })\n" }

    /// Reads a checkpoint's text (of a note whose signatures the caller checks).
    public init(text: String) throws(SignedNote.Malformed) {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count >= 4, lines.last == "" else { throw SignedNote.Malformed(reason: "a checkpoint's text is at least three lines") }
        guard !lines[0].isEmpty else { throw SignedNote.Malformed(reason: "the checkpoint's origin line is empty") }
        guard let size = UInt64(lines[1]), String(size) == lines[1] else {
            throw SignedNote.Malformed(reason: "the checkpoint's size line is \"\(lines[1].prefix(40))\", not a decimal number without leading zeros")
        }
        guard let root = Data(base64Encoded: String(lines[2])), root.count == 32 else {
            throw SignedNote.Malformed(reason: "the checkpoint's root line is not the base64 of 32 bytes")
        }
        origin = String(lines[0])
        self.size = size
        self.root = root.withUnsafeBytes { Digest32($0) }
    }
}
