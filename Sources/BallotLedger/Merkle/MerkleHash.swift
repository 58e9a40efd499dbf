public import BallotDomain

/// A SHA-256 value in the Merkle tree: a leaf hash or an interior node.
public typealias MerkleHash = Digest32

extension MerkleHash {
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
