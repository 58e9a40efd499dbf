import Testing
import TestSupport
@testable import BallotLedger
@testable import BallotFormat
@testable import BallotAudit

/// The stored-node algorithms checked against RFC 6962's recursive definition on plain arrays.
@Suite struct MerkleTreeTests {
    func leaves(_ n: Int) -> [MerkleHash] {
        (0..<n).map { i in Array("leaf \(i)".utf8).withUnsafeBytes { MerkleHash.leaf($0) } }
    }

    /// MTH from RFC 6962 §2.1, straight from the definition.
    func naiveRoot(_ d: ArraySlice<MerkleHash>) -> MerkleHash {
        if d.isEmpty { return MerkleHash.emptyRoot }
        if d.count == 1 { return d.first! }
        var k = 1
        while k * 2 < d.count { k *= 2 }
        return MerkleHash.node(naiveRoot(d.prefix(k)), naiveRoot(d.dropFirst(k)))
    }

    /// Builds the node store the way the ledger does, through the frontier.
    func store(_ hashes: [MerkleHash]) -> (MerkleFrontier, [String: MerkleHash]) {
        var frontier = MerkleFrontier()
        var nodes: [String: MerkleHash] = [:]
        for h in hashes { frontier.append(h) { level, index, hash in nodes["\(level)/\(index)"] = hash } }
        return (frontier, nodes)
    }

    /// Appending leaves a batch at a time gives the same tree, nodes and peaks as one at a
    /// time, whatever the size it starts from and however the batches fall.
    @Test func batchesBuildTheSameTreeAsSingleLeaves() {
        let hashes = leaves(300)
        let (single, singleNodes) = store(hashes)
        for cuts in [[1], [2], [3], [16], [7, 1, 64, 2], [100, 1, 1, 5, 33], [300]] {
            var frontier = MerkleFrontier()
            var nodes: [String: MerkleHash] = [:]
            var order: [Int] = []
            var at = 0, k = 0
            while at < hashes.count {
                let n = min(cuts[k % cuts.count], hashes.count - at)
                frontier.append(leaves: Array(hashes[at..<(at + n)]), storingFrom: 0) { level, index, hash in
                    #expect(nodes["\(level)/\(index)"] == nil, "node \(level)/\(index) reported twice")
                    nodes["\(level)/\(index)"] = hash
                    order.append(level)
                }
                #expect(order == order.sorted(), "levels in order within a batch")
                order = []
                at += n
                k += 1
                #expect(frontier.size == UInt64(at))
                #expect(frontier.root == naiveRoot(hashes.prefix(at)), "cuts \(cuts), size \(at)")
            }
            #expect(nodes == singleNodes, "cuts \(cuts)")
            #expect(frontier.root == single.root)
        }
        var high = MerkleFrontier()
        var reported: [Int] = []
        high.append(leaves: hashes, storingFrom: 4) { level, _, _ in reported.append(level) }
        #expect(reported.min() == 4 && reported.count == singleNodes.keys.filter { Int($0.split(separator: "/")[0])! >= 4 }.count)
    }

    @Test func rootsOfEveryPrefixMatchTheDefinition() throws {
        let hashes = leaves(70)
        let (frontier, nodes) = store(hashes)
        #expect(frontier.root == naiveRoot(hashes[...]))
        for n in 0...70 {
            var reads = 0
            let root = try MerkleTree.root(size: UInt64(n)) { level, index in
                reads += 1
                return nodes["\(level)/\(index)"]!
            }
            #expect(root == naiveRoot(hashes.prefix(n)), "size \(n)")
            #expect(reads <= max(1, UInt64(n).nonzeroBitCount), "size \(n) read \(reads) nodes")
        }
        #expect(MerkleHash.emptyRoot.hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test func inclusionProofsVerifyAndFailWhenTampered() throws {
        let hashes = leaves(40)
        let (_, nodes) = store(hashes)
        let source: MerkleTree.NodeSource = { level, index in nodes["\(level)/\(index)"]! }
        for n in 1...40 {
            let root = naiveRoot(hashes.prefix(n))
            for m in 0..<n {
                let proof = try MerkleTree.inclusionProof(index: UInt64(m), size: UInt64(n), source)
                #expect(MerkleTree.verifyInclusion(leaf: hashes[m], index: UInt64(m), size: UInt64(n), proof: proof, root: root))
                let other = hashes[(m + 1) % n]
                if n > 1 {
                    #expect(!MerkleTree.verifyInclusion(leaf: other, index: UInt64(m), size: UInt64(n), proof: proof, root: root))
                }
            }
        }
    }

    @Test func consistencyProofsVerifyAndFailWhenTampered() throws {
        let hashes = leaves(33)
        let (_, nodes) = store(hashes)
        let source: MerkleTree.NodeSource = { level, index in nodes["\(level)/\(index)"]! }
        for n in 1...33 {
            for m in 1...n {
                let proof = try MerkleTree.consistencyProof(oldSize: UInt64(m), newSize: UInt64(n), source)
                let old = naiveRoot(hashes.prefix(m))
                let new = naiveRoot(hashes.prefix(n))
                #expect(MerkleTree.verifyConsistency(oldSize: UInt64(m), newSize: UInt64(n), oldRoot: old, newRoot: new, proof: proof), "\(m)→\(n)")
                if m < n {
                    let forged = naiveRoot(leaves(m + 1).suffix(m))
                    #expect(!MerkleTree.verifyConsistency(oldSize: UInt64(m), newSize: UInt64(n), oldRoot: forged, newRoot: new, proof: proof))
                }
            }
        }
    }

    @Test func aFrontierRebuiltFromStoredPeaksContinuesTheSameTree() throws {
        let hashes = leaves(45)
        let (_, nodes) = store(Array(hashes.prefix(29)))
        var resumed = try MerkleFrontier(size: 29) { level, index in nodes["\(level)/\(index)"]! }
        for h in hashes.dropFirst(29) { resumed.append(h) { _, _, _ in } }
        #expect(resumed.root == naiveRoot(hashes[...]))
    }

    @Test func nodeKeysAreInCompletionOrder() {
        var frontier = MerkleFrontier()
        var keys: [[UInt8]] = []
        for h in leaves(64) { frontier.append(h) { level, index, _ in keys.append(LedgerKeys.merkleNode(level: level, index: index)) } }
        #expect(keys == keys.sorted { $0.lexicographicallyPrecedes($1) })
        #expect(keys.count == 127)
    }
}
