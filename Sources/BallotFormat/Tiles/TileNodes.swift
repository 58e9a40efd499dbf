/// The Merkle nodes of a tree of `size` events, read from its tiles (c2sp.org/tlog-tiles) as
/// `fetch` gets them by path, each tile once: what a client that has only the tiles computes a
/// root or a proof from (`MerkleTree.root(size:_:)` and the proofs take `node` as their source).
/// A tile of the wrong length is refused; its hashes are checked by what is computed from them
/// against a signed root.
public final class TileNodes {
    public let size: UInt64
    private let fetch: (String) throws -> [UInt8]
    private var tiles: [String: [UInt8]] = [:]

    public init(size: UInt64, fetch: @escaping (String) throws -> [UInt8]) {
        self.size = size
        self.fetch = fetch
    }

    /// The node at `level`, `index` (a perfect subtree within the tree): a tile's hash when the
    /// level is a multiple of 8, else folded from the hashes of the tile level below it.
    public func node(_ level: Int, _ index: UInt64) throws -> MerkleHash {
        let tileLevel = level / 8
        let below = level % 8
        if below == 0 { return try hash(tileLevel, index) }
        let first = index << UInt64(below)
        var row = try (0..<(UInt64(1) << UInt64(below))).map { try hash(tileLevel, first + $0) }
        while row.count > 1 {
            row = stride(from: 0, to: row.count, by: 2).map { MerkleHash.node(row[$0], row[$0 + 1]) }
        }
        return row[0]
    }

    private func hash(_ tileLevel: Int, _ index: UInt64) throws -> MerkleHash {
        guard index < TileLayout.hashes(level: tileLevel, size: size) else {
            throw TileError("node \(index) of level \(8 * tileLevel) is not in a tree of \(size) events")
        }
        let tile = TileLayout.tile(level: tileLevel, holding: index, size: size)
        let bytes: [UInt8]
        if let cached = tiles[tile.path] {
            bytes = cached
        } else {
            bytes = try fetch(tile.path)
            guard bytes.count == tile.width * TileLayout.hashBytes else {
                throw TileError("the tile \(tile.path) is \(bytes.count) bytes, not \(tile.width * TileLayout.hashBytes)")
            }
            tiles[tile.path] = bytes
        }
        let at = Int(index % TileLayout.width) * TileLayout.hashBytes
        return bytes[at..<(at + TileLayout.hashBytes)].withUnsafeBytes { MerkleHash($0) }
    }
}
