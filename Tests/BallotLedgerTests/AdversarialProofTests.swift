import Testing
import TestSupport
import BallotClient
@testable import BallotFormat

/// Adversarial proofs (issue 18, method 4): valid inclusion and consistency proofs, mutated at
/// random, 10,000 of each, must all be refused. immudb's verifier once accepted a forged
/// proof; these are the mutations a forger tries: a flipped bit, a hash dropped, added,
/// repeated, swapped or replaced, another index, leaf or root, and the proof passed off as one
/// for another size with that size's true root. (A size changed while the root is kept is not
/// a forgery this layer can see: RFC 9162's algorithm reads only the shape of the path from the
/// size, and several sizes share a shape. The signed checkpoint binds a size to its root, and
/// `ReplayTests` checks that signature.)
@Suite struct AdversarialProofTests {
    struct Tree {
        let leaves: [MerkleHash]
        let nodes: [String: MerkleHash]
        var size: UInt64 { UInt64(leaves.count) }

        init(_ n: Int, seed: UInt64) {
            leaves = (0..<n).map { i in Array("leaf \(seed) \(i)".utf8).withUnsafeBytes { MerkleHash.leaf($0) } }
            var frontier = MerkleFrontier()
            var nodes: [String: MerkleHash] = [:]
            for h in leaves { frontier.append(h) { level, index, hash in nodes["\(level)/\(index)"] = hash } }
            self.nodes = nodes
        }

        struct Missing: Error {}
        func node(_ level: Int, _ index: UInt64) throws -> MerkleHash {
            guard let hash = nodes["\(level)/\(index)"] else { throw Missing() }
            return hash
        }
        func root(_ size: UInt64) throws -> MerkleHash { try MerkleTree.root(size: size, node) }
    }

    /// One random change to `proof`, always a different list than it was.
    static func mutate(_ proof: [MerkleHash], _ rng: inout SplitMix64) -> [MerkleHash] {
        var p = proof
        let junk = Array("junk \(rng.next())".utf8).withUnsafeBytes { MerkleHash.leaf($0) }
        switch (p.isEmpty ? 4 : Int(rng.next() % 7)) {
        case 0:   // flip one bit of one hash
            let i = Int(rng.next() % UInt64(p.count))
            var bytes = p[i].withBytes { Array($0) }
            bytes[Int(rng.next() % 32)] ^= UInt8(1) << UInt8(rng.next() % 8)
            p[i] = bytes.withUnsafeBytes { MerkleHash($0) }
        case 1: p.remove(at: Int(rng.next() % UInt64(p.count)))
        case 2: p.insert(p[Int(rng.next() % UInt64(p.count))], at: Int(rng.next() % UInt64(p.count + 1)))
        case 3 where p.count > 1:
            let i = Int(rng.next() % UInt64(p.count)), j = (i + 1 + Int(rng.next() % UInt64(p.count - 1))) % p.count
            p.swapAt(i, j)
        case 5: p[Int(rng.next() % UInt64(p.count))] = junk
        case 6: p.removeLast()
        default: p.insert(junk, at: Int(rng.next() % UInt64(p.count + 1)))
        }
        return p
    }

    @Test func noMutatedInclusionProofIsAccepted() throws {
        var rng = SplitMix64(seed: 18)
        var refused = 0
        for round in 0..<100 {
            let tree = Tree(Int(rng.next() % 300) + 2, seed: UInt64(round))
            for _ in 0..<100 {
                let size = rng.next() % tree.size + 1, index = rng.next() % size
                let root = try tree.root(size)
                let proof = try MerkleTree.inclusionProof(index: index, size: size, tree.node)
                let leaf = tree.leaves[Int(index)]
                #expect(MerkleTree.verifyInclusion(leaf: leaf, index: index, size: size, proof: proof, root: root))
                // One forgery: a changed proof, or the right proof for a changed claim.
                var (l, i, s, p, r) = (leaf, index, size, proof, root)
                switch rng.next() % 6 {
                case 0: l = tree.leaves[(Int(index) + 1 + Int(rng.next() % tree.size)) % tree.leaves.count]
                case 1: i = (index + 1 + rng.next() % size) % max(size, 2)
                case 2:   // the proof passed off as one for another size, with that size's true root
                    s = (size + 1 + rng.next() % tree.size) % tree.size + 1
                    r = try tree.root(s)
                    if index >= s { continue }
                    if try MerkleTree.inclusionProof(index: index, size: s, tree.node) == proof { continue }
                case 3: r = try tree.root(size == 1 ? 2 : size - 1)
                default: p = Self.mutate(proof, &rng)
                }
                if (l, i, s, p, r) == (leaf, index, size, proof, root) { continue }
                #expect(!MerkleTree.verifyInclusion(leaf: l, index: i, size: s, proof: p, root: r),
                        "accepted: leaf \(l == leaf ? "same" : "other") index \(i) of \(index), size \(s) of \(size), proof changed \(p != proof), root changed \(r != root)")
                refused += 1
            }
        }
        #expect(refused >= 9_000)
    }

    @Test func noMutatedConsistencyProofIsAccepted() throws {
        var rng = SplitMix64(seed: 19)
        var refused = 0
        for round in 0..<100 {
            let tree = Tree(Int(rng.next() % 300) + 2, seed: UInt64(round))
            for _ in 0..<100 {
                let newSize = rng.next() % (tree.size - 1) + 2, oldSize = rng.next() % (newSize - 1) + 1
                let (oldRoot, newRoot) = (try tree.root(oldSize), try tree.root(newSize))
                let proof = try MerkleTree.consistencyProof(oldSize: oldSize, newSize: newSize, tree.node)
                #expect(MerkleTree.verifyConsistency(oldSize: oldSize, newSize: newSize, oldRoot: oldRoot, newRoot: newRoot, proof: proof))
                var (o, n, or, nr, p) = (oldSize, newSize, oldRoot, newRoot, proof)
                switch rng.next() % 6 {
                case 0: or = try tree.root(oldSize == 1 ? 2 : oldSize - 1)
                case 1: nr = try tree.root(newSize == tree.size ? newSize - 1 : newSize + 1)
                case 2: o = oldSize + 1 == newSize ? oldSize - 1 : oldSize + 1
                case 3:   // the proof passed off as one to another new size, with its true root
                    n = (newSize + rng.next() % tree.size) % tree.size + 1
                    nr = try tree.root(n)
                    if n <= oldSize { continue }
                    if try MerkleTree.consistencyProof(oldSize: oldSize, newSize: n, tree.node) == proof { continue }
                default: p = Self.mutate(proof, &rng)
                }
                // An old size changed alone: the claim is false unless that size's root is the same.
                if o == 0 { continue }
                if o != oldSize, try tree.root(o) == or { continue }
                if (o, n, or, nr, p) == (oldSize, newSize, oldRoot, newRoot, proof) { continue }
                #expect(!MerkleTree.verifyConsistency(oldSize: o, newSize: n, oldRoot: or, newRoot: nr, proof: p),
                        "accepted: sizes \(o)->\(n) of \(oldSize)->\(newSize), roots changed \(or != oldRoot) \(nr != newRoot), proof changed \(p != proof)")
                refused += 1
            }
        }
        #expect(refused >= 9_000)
    }
}
