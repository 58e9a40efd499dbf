public import BallotDomain
import CSHA256Pair

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

    /// Whether `leaves` and `parents` hash two messages at a time (the x86 SHA extensions);
    /// otherwise they hash one at a time with OpenSSL. Both give the same hashes.
    static let hashesInPairs = ballot_sha256_pair_available() != 0

    /// The leaf hash of each record, in order.
    public static func leaves(_ records: [UnsafeRawBufferPointer]) -> [MerkleHash] {
        hashed(records.count, prefix: 0x00) { records[$0] }
    }

    /// SHA-256(0x01 || children[2i] || children[2i+1]) for each i: the parents of sibling pairs.
    static func parents(of children: [MerkleHash]) -> [MerkleHash] {
        precondition(children.count % 2 == 0, "\(children.count) nodes do not make pairs")
        return children.withUnsafeBytes { all in
            hashed(children.count / 2, prefix: 0x01) { UnsafeRawBufferPointer(rebasing: all[(64 * $0)..<(64 * $0 + 64)]) }
        }
    }

    /// SHA-256(prefix || message(i)) for i in 0..<count.
    private static func hashed(_ count: Int, prefix: UInt8, _ message: (Int) -> UnsafeRawBufferPointer) -> [MerkleHash] {
        [MerkleHash](unsafeUninitializedCapacity: count) { out, initialized in
            let raw = UnsafeMutableRawPointer(out.baseAddress)
            func at(_ i: Int) -> UnsafeMutablePointer<UInt8>? {
                (raw! + i * MemoryLayout<MerkleHash>.stride).assumingMemoryBound(to: UInt8.self)
            }
            var i = 0
            if hashesInPairs {
                while i + 1 < count {
                    let a = message(i), b = message(i + 1)
                    ballot_sha256_pair(prefix, a.baseAddress, a.count, at(i), b.baseAddress, b.count, at(i + 1))
                    i += 2
                }
                if i < count {
                    let a = message(i)
                    ballot_sha256_one(prefix, a.baseAddress, a.count, at(i))
                    i += 1
                }
            }
            while i < count {
                var d = SHA256Digester()
                d.update(prefix)
                d.update(message(i))
                out.initializeElement(at: i, to: d.finalize())
                i += 1
            }
            initialized = count
        }
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
