import COpenSSL
public import BallotCollections
public import BallotDomain

/// SHA-256 (FIPS 180-4) through OpenSSL's libcrypto, without allocation: the state is a value,
/// so copying a digester copies a precomputed state (which HMAC uses).
public struct SHA256Digester: Sendable {
    private var context = ballot_sha256_ctx()

    public init() { ballot_sha256_init(&context) }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        ballot_sha256_update(&context, bytes.baseAddress, bytes.count)
    }

    package mutating func update(_ byte: UInt8) {
        var b = byte
        ballot_sha256_update(&context, &b, 1)
    }

    /// The digest; the digester is used up.
    public consuming func finalize() -> MerkleHash {
        withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { out in
            ballot_sha256_final(&context, out.baseAddress!.assumingMemoryBound(to: UInt8.self))
            return MerkleHash(UnsafeRawBufferPointer(out))
        }
    }

    /// SHA-256 of `bytes`.
    package static func hash(_ bytes: UnsafeRawBufferPointer) -> MerkleHash {
        var d = SHA256Digester()
        d.update(bytes)
        return d.finalize()
    }
}

/// HMAC-SHA256 (RFC 2104) with the key's inner and outer states computed once.
package struct HMACSHA256 {
    private let inner: SHA256Digester
    private let outer: SHA256Digester

    package init(key: [UInt8]) {
        var block = [UInt8](repeating: 0, count: 64)
        if key.count > 64 {
            key.withUnsafeBytes { SHA256Digester.hash($0) }.withBytes { block.replaceSubrange(0..<32, with: $0) }
        } else {
            block.replaceSubrange(0..<key.count, with: key)
        }
        var i = SHA256Digester()
        block.map { $0 ^ 0x36 }.withUnsafeBytes { i.update($0) }
        var o = SHA256Digester()
        block.map { $0 ^ 0x5C }.withUnsafeBytes { o.update($0) }
        inner = i
        outer = o
    }

    package func authenticate(_ message: UnsafeRawBufferPointer) -> MerkleHash {
        var i = inner
        i.update(message)
        let innerDigest = i.finalize()
        var o = outer
        innerDigest.withBytes { o.update($0) }
        return o.finalize()
    }
}
