/// Where the tiles of a tree live and how wide each is (c2sp.org/tlog-tiles): level L holds
/// the Merkle nodes of level 8·L, 256 to a tile; the rightmost tiles of a tree are partial.
/// Pure arithmetic, shared by the writer and the clients that fetch them.
public enum TileLayout {
    public static let width: UInt64 = 256
    public static let hashBytes = 32
    /// The longest entry an entry bundle can hold: its length is a big-endian uint16.
    public static let maxEntryBytes = Int(UInt16.max)

    /// A tile's place: `level` nil for an entry bundle, `index` in its level, and its width
    /// (256 for a full tile).
    public struct Tile: Sendable, Hashable, CustomStringConvertible {
        public var level: Int?
        public var index: UInt64
        public var width: Int

        public init(level: Int?, index: UInt64, width: Int) {
            self.level = level
            self.index = index
            self.width = width
        }

        public var isFull: Bool { width == Int(TileLayout.width) }

        /// Its path under the prefix: `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`, N
        /// in zero-padded 3-digit elements, all but the last prefixed with `x`.
        public var path: String {
            var elements: [String] = []
            var n = index
            repeat {
                let digits = String(n % 1000)
                elements.append(String(repeating: "0", count: 3 - digits.count) + digits)
                n /= 1000
            } while n > 0
            let number = elements.reversed().enumerated().map { i, e in i == elements.count - 1 ? e : "x" + e }.joined(separator: "/")
            return "tile/\(level.map(String.init) ?? "entries")/\(number)" + (isFull ? "" : ".p/\(width)")
        }

        public var description: String { path }
    }

    /// How many hashes level `level` holds for a tree of `size` leaves: ⌊size / 256^level⌋.
    public static func hashes(level: Int, size: UInt64) -> UInt64 {
        level * 8 >= 64 ? 0 : size >> UInt64(8 * level)
    }

    /// The tiles of `level` that a tree of `size` has and one of `oldSize` did not (the last
    /// partial tile of `oldSize` comes again, wider); `level` nil gives the entry bundles,
    /// which match level 0.
    public static func newTiles(level: Int?, oldSize: UInt64, size: UInt64) -> [Tile] {
        let total = hashes(level: level ?? 0, size: size)
        let before = hashes(level: level ?? 0, size: min(oldSize, size))
        guard total > before else { return [] }
        return (before / width...(total - 1) / width).map { n in
            Tile(level: level, index: n, width: Int(min(width, total - n * width)))
        }
    }

    /// The levels a tree of `size` has tiles at.
    public static func levels(size: UInt64) -> [Int] {
        var levels: [Int] = []
        var level = 0
        while hashes(level: level, size: size) > 0 {
            levels.append(level)
            level += 1
        }
        return levels
    }

    /// The tile of `level` holding node `index` of level 8·`level`, as it is in a tree of `size`.
    public static func tile(level: Int, holding index: UInt64, size: UInt64) -> Tile {
        let n = index / width
        return Tile(level: level, index: n, width: Int(min(width, hashes(level: level, size: size) - n * width)))
    }

    /// The entries of a bundle: big-endian uint16 lengths, each followed by its entry.
    public static func entries(inBundle bytes: [UInt8]) -> [ArraySlice<UInt8>]? {
        var entries: [ArraySlice<UInt8>] = []
        var at = 0
        while at < bytes.count {
            guard at + 2 <= bytes.count else { return nil }
            let length = Int(bytes[at]) << 8 | Int(bytes[at + 1])
            guard at + 2 + length <= bytes.count else { return nil }
            entries.append(bytes[(at + 2)..<(at + 2 + length)])
            at += 2 + length
        }
        return entries
    }
}
