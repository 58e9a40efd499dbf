public import BallotCollections
public import BallotDomain
/// RFC 6962 / RFC 9162 Merkle tree algorithms over stored perfect subtrees.
///
/// A "node" here is the hash of a perfect, aligned subtree: level `L`, index `i` covers leaves
/// `i·2^L ..< (i+1)·2^L` (level 0 is the leaf hashes). The ledger stores every such node once it
/// is complete, so any hash the algorithms below need is one stored node or is built from at
/// most log2(n) of them: the root of any prefix, inclusion and consistency proofs each cost
/// O(log n) reads.
public enum MerkleTree {
    /// Reads the stored node at `level`, `index`.
    public typealias NodeSource = (_ level: Int, _ index: UInt64) throws -> MerkleHash

    /// The root hash of the first `size` leaves (MTH(D[0:size])).
    public static func root(size: UInt64, _ node: NodeSource) throws -> MerkleHash {
        size == 0 ? MerkleHash.emptyRoot : try subtree(start: 0, size: size, node)
    }

    /// MTH of leaves `start ..< start+size`, where `start` is a multiple of the largest power of
    /// two below `size` (which holds for every range the RFC's recursion visits).
    package static func subtree(start: UInt64, size: UInt64, _ node: NodeSource) throws -> MerkleHash {
        if size & (size - 1) == 0 {
            let level = size.trailingZeroBitCount
            return try node(level, start >> UInt64(level))
        }
        let k = largestPowerOfTwo(below: size)
        return MerkleHash.node(try subtree(start: start, size: k, node),
                               try subtree(start: start + k, size: size - k, node))
    }

    /// The inclusion proof (audit path) of leaf `index` in the tree of the first `size` leaves.
    public static func inclusionProof(index: UInt64, size: UInt64, _ node: NodeSource) throws -> [MerkleHash] {
        precondition(index < size, "leaf \(index) is not in a tree of \(size) leaves")
        var proof: [MerkleHash] = []
        try path(index, start: 0, size: size, node, into: &proof)
        return proof
    }

    private static func path(_ m: UInt64, start: UInt64, size n: UInt64, _ node: NodeSource,
                             into proof: inout [MerkleHash]) throws {
        guard n > 1 else { return }
        let k = largestPowerOfTwo(below: n)
        if m < k {
            try path(m, start: start, size: k, node, into: &proof)
            proof.append(try subtree(start: start + k, size: n - k, node))
        } else {
            try path(m - k, start: start + k, size: n - k, node, into: &proof)
            proof.append(try subtree(start: start, size: k, node))
        }
    }

    /// The consistency proof that the tree of `newSize` leaves extends the tree of `oldSize`.
    public static func consistencyProof(oldSize: UInt64, newSize: UInt64, _ node: NodeSource) throws -> [MerkleHash] {
        precondition(oldSize <= newSize, "a tree of \(newSize) leaves cannot extend one of \(oldSize)")
        guard oldSize > 0, oldSize < newSize else { return [] }
        var proof: [MerkleHash] = []
        try subproof(oldSize, start: 0, size: newSize, complete: true, node, into: &proof)
        return proof
    }

    private static func subproof(_ m: UInt64, start: UInt64, size n: UInt64, complete: Bool,
                                 _ node: NodeSource, into proof: inout [MerkleHash]) throws {
        if m == n {
            if !complete { proof.append(try subtree(start: start, size: n, node)) }
            return
        }
        let k = largestPowerOfTwo(below: n)
        if m <= k {
            try subproof(m, start: start, size: k, complete: complete, node, into: &proof)
            proof.append(try subtree(start: start + k, size: n - k, node))
        } else {
            try subproof(m - k, start: start + k, size: n - k, complete: false, node, into: &proof)
            proof.append(try subtree(start: start, size: k, node))
        }
    }

    /// RFC 9162 §2.1.3.2: does `proof` show leaf `index` with hash `leaf` in the tree of `size` with `root`?
    public static func verifyInclusion(leaf: MerkleHash, index: UInt64, size: UInt64,
                                       proof: [MerkleHash], root: MerkleHash) -> Bool {
        guard index < size else { return false }
        var fn = index
        var sn = size - 1
        var r = leaf
        for p in proof {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                r = MerkleHash.node(p, r)
                while fn & 1 == 0 && fn != 0 {
                    fn >>= 1
                    sn >>= 1
                }
            } else {
                r = MerkleHash.node(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && r == root
    }

    /// RFC 9162 §2.1.4.2: does `proof` show the tree (`newSize`, `newRoot`) extends (`oldSize`, `oldRoot`)?
    public static func verifyConsistency(oldSize: UInt64, newSize: UInt64, oldRoot: MerkleHash,
                                         newRoot: MerkleHash, proof: [MerkleHash]) -> Bool {
        if oldSize > newSize { return false }
        if oldSize == newSize { return proof.isEmpty && oldRoot == newRoot }
        // Every tree extends the empty one, whose root is the hash of nothing.
        if oldSize == 0 { return proof.isEmpty && oldRoot == MerkleHash.emptyRoot }
        var path = proof
        if oldSize & (oldSize - 1) == 0 { path.insert(oldRoot, at: 0) }
        guard let first = path.first else { return false }
        var fn = oldSize - 1
        var sn = newSize - 1
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        var fr = first
        var sr = first
        for c in path.dropFirst() {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                fr = MerkleHash.node(c, fr)
                sr = MerkleHash.node(c, sr)
                while fn & 1 == 0 && fn != 0 {
                    fn >>= 1
                    sn >>= 1
                }
            } else {
                sr = MerkleHash.node(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && fr == oldRoot && sr == newRoot
    }

    /// The largest power of two strictly below `n` (n ≥ 2).
    package static func largestPowerOfTwo(below n: UInt64) -> UInt64 {
        UInt64(1) << UInt64(63 - (n - 1).leadingZeroBitCount)
    }
}

/// The right edge of the tree while appending: the roots of the perfect subtrees ("peaks") that
/// make up the current size, largest first. Appending a leaf completes at most log2(n) new
/// nodes and amortised one, so the per-event work is O(1) and history is never rehashed.
public struct MerkleFrontier: Sendable {
    public private(set) var size: UInt64 = 0
    private(set) var peaks: [(level: Int, hash: MerkleHash)] = []

    public init() {}

    /// Rebuilds the frontier of a stored tree of `size` leaves from its peaks (log2(n) reads).
    public init(size: UInt64, _ node: MerkleTree.NodeSource) throws {
        self.size = size
        var start: UInt64 = 0
        for level in stride(from: 63, through: 0, by: -1) where size & (UInt64(1) << UInt64(level)) != 0 {
            peaks.append((level, try node(level, start >> UInt64(level))))
            start += UInt64(1) << UInt64(level)
        }
    }

    /// The frontier of a subtree being built from leaf `start` on, alone: its nodes get their
    /// indices in the whole tree, and once it is whole its root is the only peak. (The audit
    /// builds a segment's subtree so, on any thread, then adds it with `append(subtree:level:store:)`.)
    package init(emptyAt start: UInt64) {
        size = start
    }

    /// Adds a whole subtree of 2^`level` leaves by its root, as appending its leaves would;
    /// `store` receives each node above it that it completes, in increasing level order. The
    /// tree's size must be a multiple of 2^`level`.
    package mutating func append(subtree hash: MerkleHash, level: Int,
                         store: (_ level: Int, _ index: UInt64, _ hash: MerkleHash) throws -> Void) rethrows {
        precondition(size & ((UInt64(1) << UInt64(level)) - 1) == 0, "a subtree of level \(level) appended at leaf \(size)")
        let end = size + (UInt64(1) << UInt64(level))
        var carry = (level: level, hash: hash)
        while let last = peaks.last, last.level == carry.level {
            peaks.removeLast()
            carry = (carry.level + 1, MerkleHash.node(last.hash, carry.hash))
            try store(carry.level, (end >> UInt64(carry.level)) - 1, carry.hash)
        }
        peaks.append(carry)
        size = end
    }

    /// Adds a leaf; `store` receives each node completed by it (the leaf first), with its level
    /// and index, in increasing level order.
    public mutating func append(_ leaf: MerkleHash,
                                store: (_ level: Int, _ index: UInt64, _ hash: MerkleHash) throws -> Void) rethrows {
        try store(0, size, leaf)
        try append(subtree: leaf, level: 0, store: store)  // a leaf is a subtree of one
    }

    /// Adds `leaves` in order, as many `append(_:store:)` calls would, but a level at a time, so
    /// that sibling nodes are hashed many at a time (`MerkleHash.parents`). `store` receives each
    /// completed node of level `lowest` or above, level by level, each level in index order.
    public mutating func append(leaves: [MerkleHash], storingFrom lowest: Int = 0,
                                store: (_ level: Int, _ index: UInt64, _ hash: MerkleHash) throws -> Void) rethrows {
        var row = leaves
        var first = size  // the index of row[0] at its level
        var level = 0
        var carries: [(level: Int, hash: MerkleHash)] = []
        size += UInt64(leaves.count)
        while !row.isEmpty {
            if level >= lowest {
                for (k, hash) in row.enumerated() { try store(level, first + UInt64(k), hash) }
            }
            // A peak at this level is the left sibling of row[0].
            if let peak = peaks.last, peak.level == level {
                peaks.removeLast()
                row.insert(peak.hash, at: 0)
                first -= 1
            }
            if row.count % 2 == 1 { carries.append((level, row.removeLast())) }
            row = MerkleHash.parents(of: row)
            first /= 2
            level += 1
        }
        peaks.append(contentsOf: carries.reversed())
    }

    /// The root of the tree as it stands.
    public var root: MerkleHash {
        guard var r = peaks.last?.hash else { return MerkleHash.emptyRoot }
        for peak in peaks.dropLast().reversed() { r = MerkleHash.node(peak.hash, r) }
        return r
    }
}
