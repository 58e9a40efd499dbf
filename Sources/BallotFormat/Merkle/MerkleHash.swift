public import BallotDomain
import CSHA256Batch
public import BallotCollections

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

    /// How many messages `leaves` and `parents` hash at a time: 16 with AVX-512, 2 with the x86
    /// SHA extensions, else 1 (OpenSSL). All give the same hashes (`CSHA256Batch`).
    package static let lanes = ballot_sha256_x16_available() != 0 ? 16 : hasPairs ? 2 : 1
    /// Whether the two-at-a-time way can run here (tests run it even where 16 are hashed).
    package static let hasPairs = ballot_sha256_pair_available() != 0

    /// The leaf hash of each record, in order.
    public static func leaves(_ records: [UnsafeRawBufferPointer]) -> [MerkleHash] {
        leaves(records, lanes: lanes)
    }

    /// `leaves` at most `lanes` at a time (tests run every way this processor has).
    package static func leaves(_ records: [UnsafeRawBufferPointer], lanes: Int) -> [MerkleHash] {
        hashed(records.count, prefix: 0x00, lanes: lanes) { records[$0] }
    }

    /// Appends to `leaves` the leaf hash of records 0..<`count`, in order, `record(i)` giving
    /// each one's bytes.
    package static func appendLeaves(count: Int, to leaves: inout [MerkleHash], _ record: (Int) -> UnsafeRawBufferPointer) {
        withUnsafeTemporaryAllocation(of: MerkleHash.self, capacity: count) { out in
            hashed(count, prefix: 0x00, lanes: lanes, into: UnsafeMutableRawPointer(out.baseAddress!), record)
            leaves.append(contentsOf: UnsafeBufferPointer(out))  // (initialised by `hashed`)
        }
    }

    /// SHA-256(0x01 || children[2i] || children[2i+1]) for each i: the parents of sibling pairs.
    package static func parents(of children: [MerkleHash], lanes: Int = lanes) -> [MerkleHash] {
        precondition(children.count % 2 == 0, "\(children.count) nodes do not make pairs")
        return children.withUnsafeBytes { all in
            hashed(children.count / 2, prefix: 0x01, lanes: lanes) { UnsafeRawBufferPointer(rebasing: all[(64 * $0)..<(64 * $0 + 64)]) }
        }
    }

    /// SHA-256(prefix || message(i)) for i in 0..<count, `lanes` (16, 2 or 1) at a time.
    private static func hashed(_ count: Int, prefix: UInt8, lanes: Int,
                               _ message: (Int) -> UnsafeRawBufferPointer) -> [MerkleHash] {
        // None is []: an array made with capacity 0 is the shared empty one, whose count the
        // initialiser writes (0 over 0), a write ThreadSanitizer reports when threads do it.
        guard count > 0 else { return [] }
        return [MerkleHash](unsafeUninitializedCapacity: count) { out, initialized in
            hashed(count, prefix: prefix, lanes: lanes, into: UnsafeMutableRawPointer(out.baseAddress!), message)
            initialized = count
        }
    }

    /// `hashed`, into `count` hashes' room at `raw` (which it initialises).
    private static func hashed(_ count: Int, prefix: UInt8, lanes: Int, into raw: UnsafeMutableRawPointer,
                               _ message: (Int) -> UnsafeRawBufferPointer) {
        precondition(lanes != 16 || Self.lanes == 16, "16 at a time needs AVX-512, which this processor lacks")
        func at(_ i: Int) -> UnsafeMutablePointer<UInt8>? {
            (raw + i * MemoryLayout<MerkleHash>.stride).assumingMemoryBound(to: UInt8.self)
        }
        var i = 0
        if lanes == 16 && count >= 16 {
            withUnsafeTemporaryAllocation(of: UnsafeRawPointer?.self, capacity: 16) { messages in
                withUnsafeTemporaryAllocation(of: Int.self, capacity: 16) { lengths in
                    while i + 16 <= count {
                        for lane in 0..<16 {
                            let m = message(i + lane)
                            messages[lane] = m.baseAddress
                            lengths[lane] = m.count
                        }
                        ballot_sha256_x16(prefix, messages.baseAddress, lengths.baseAddress, at(i))
                        i += 16
                    }
                }
            }
        }
        // What is left over (fewer than 16), two at a time where the SHA extensions are.
        if lanes >= 2 && hasPairs {
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
            (raw + i * MemoryLayout<MerkleHash>.stride).initializeMemory(as: MerkleHash.self, to: d.finalize())
            i += 1
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
