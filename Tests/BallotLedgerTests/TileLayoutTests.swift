import Testing
@testable import BallotFormat

/// c2sp.org/tlog-tiles' arithmetic, checked against the spec's own examples.
@Suite struct TileLayoutTests {
    @Test func pathsAreThreeDigitElementsWithXPrefixes() {
        #expect(TileLayout.Tile(level: 0, index: 1_234_067, width: 256).path == "tile/0/x001/x234/067")
        #expect(TileLayout.Tile(level: 2, index: 5, width: 17).path == "tile/2/005.p/17")
        #expect(TileLayout.Tile(level: nil, index: 1000, width: 256).path == "tile/entries/x001/000")
        #expect(TileLayout.Tile(level: nil, index: 0, width: 1).path == "tile/entries/000.p/1")
    }

    /// "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level 0
    /// tile of width 112, one full level 1 tile, one partial level 1 tile of width 17, and one
    /// partial level 2 tile of width 1."
    @Test func theSpecsTreeOfSeventyThousand() {
        let level0 = TileLayout.newTiles(level: 0, oldSize: 0, size: 70_000)
        #expect(level0.count == 274 && level0.filter(\.isFull).count == 273 && level0.last?.width == 112)
        #expect(TileLayout.newTiles(level: 1, oldSize: 0, size: 70_000).map(\.width) == [256, 17])
        #expect(TileLayout.newTiles(level: 2, oldSize: 0, size: 70_000).map(\.width) == [1])
        #expect(TileLayout.levels(size: 70_000) == [0, 1, 2])
        // "a tree of size 256 will be represented by a full level 0 tile and a partial level 1 tile of width 1."
        #expect(TileLayout.levels(size: 256).flatMap { TileLayout.newTiles(level: $0, oldSize: 0, size: 256) }.map(\.path) == ["tile/0/000", "tile/1/000.p/1"])
        #expect(TileLayout.levels(size: 0).isEmpty)
    }

    /// Growing from one checkpoint to the next writes the old partial tile again, wider, and
    /// what is new; nothing that is the same.
    @Test func growingWritesOnlyWhatChanged() {
        #expect(TileLayout.newTiles(level: 0, oldSize: 300, size: 700).map(\.path) == ["tile/0/001", "tile/0/002.p/188"])
        #expect(TileLayout.newTiles(level: 0, oldSize: 512, size: 513).map(\.path) == ["tile/0/002.p/1"])
        #expect(TileLayout.newTiles(level: 1, oldSize: 600, size: 700).isEmpty)   // still 2 hashes at level 1
        #expect(TileLayout.newTiles(level: 1, oldSize: 700, size: 800).map(\.path) == ["tile/1/000.p/3"])
        #expect(TileLayout.newTiles(level: nil, oldSize: 800, size: 800).isEmpty)
        // Every tile of the larger tree is either new or was there, unchanged, for the smaller.
        for (old, new) in [(1, 257), (255, 256), (256, 65_536), (65_535, 65_537), (70_000, 140_000)] as [(UInt64, UInt64)] {
            for level in TileLayout.levels(size: new) {
                let all = Set(TileLayout.newTiles(level: level, oldSize: 0, size: new))
                let before = Set(TileLayout.newTiles(level: level, oldSize: 0, size: old))
                let fresh = Set(TileLayout.newTiles(level: level, oldSize: old, size: new))
                #expect(all.subtracting(fresh).isSubset(of: before), "level \(level) from \(old) to \(new): a tile neither new nor there")
                #expect(fresh.isDisjoint(with: before.filter(\.isFull)), "level \(level) from \(old) to \(new) rewrites a full tile")
            }
        }
    }

    @Test func bundlesSplitIntoTheirEntries() {
        #expect(TileLayout.entries(inBundle: [0, 2, 9, 8, 0, 0, 0, 1, 7])?.map(Array.init) == [[9, 8], [], [7]])
        #expect(TileLayout.entries(inBundle: [0, 3, 1, 2]) == nil)
        #expect(TileLayout.entries(inBundle: [0]) == nil)
    }
}
