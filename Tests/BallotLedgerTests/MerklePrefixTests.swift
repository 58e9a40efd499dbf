import Foundation
import Testing
import PropertyBased
@testable import BallotFormat

/// Issue 18, method 5: the root of a prefix never changes as the ledger grows. Leaves are
/// appended in random batches, as the writer appends them; every root seen along the way is
/// then recomputed from the stored nodes of the grown tree, and proven consistent with it.
@Suite struct MerklePrefixTests {
    struct MissingNode: Error { let level: Int, index: UInt64 }

    static let batches = Gen.int(in: 1...40).array(of: 1...30)

    @Test func theRootOfAPrefixNeverChanges() async {
        await propertyCheck(count: Int(ProcessInfo.processInfo.environment["BALLOT_PROPERTY_RUNS"] ?? "") ?? 200, input: Self.batches) { batches in
            var frontier = MerkleFrontier()
            var nodes: [String: MerkleHash] = [:]
            var roots: [UInt64: MerkleHash] = [0: MerkleHash.emptyRoot]
            var next = 0
            for n in batches {
                let leaves = (next..<(next + n)).map { i in Array("event \(i)".utf8).withUnsafeBytes { MerkleHash.leaf($0) } }
                next += n
                frontier.append(leaves: leaves) { level, index, hash in
                    #expect(nodes["\(level)/\(index)"] == nil, "node \(level)/\(index) written twice")
                    nodes["\(level)/\(index)"] = hash
                }
                roots[frontier.size] = frontier.root
            }
            let node: MerkleTree.NodeSource = { level, index in
                guard let hash = nodes["\(level)/\(index)"] else { throw MissingNode(level: level, index: index) }
                return hash
            }
            let size = frontier.size
            for (k, root) in roots {
                #expect(try MerkleTree.root(size: k, node) == root, "the root at size \(k) changed once the tree grew to \(size)")
                guard k > 0 else { continue }
                let proof = try MerkleTree.consistencyProof(oldSize: k, newSize: size, node)
                #expect(MerkleTree.verifyConsistency(oldSize: k, newSize: size, oldRoot: root, newRoot: frontier.root, proof: proof))
            }
        }
    }
}
