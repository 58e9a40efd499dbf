import Testing
import Foundation
import TestSupport
import BallotLedger
import BallotDomain
@testable import BallotFormat

/// Tiles written by `TileWriter` and read back through `TileNodes` give the ledger's own roots
/// and proofs, whatever the tree's size; and `ballot-replay monitor` over HTTP tells a log that
/// grew from one that shows another tree.
@Suite(.serialized, .timeLimit(.minutes(3))) struct TilesAndMonitorTests {
    let key = try! CheckpointKey(seed: Array(repeating: 5, count: 32))

    func ledger(_ dir: TemporaryDirectory, votes: Range<Int>, seed: UInt64 = 42) throws -> Ledger {
        var options = Fixtures.options()
        options.checkpointOrigin = "example.org/tiles-unit"
        let ledger = try Ledger(path: dir.sub("ledger"), options: options, clock: ManualClock(Fixtures.now), checkpointKey: key)
        _ = try ledger.submit(Fixtures.setUpCommands().map { Submission($0, by: Fixtures.admin) })
        _ = try ledger.submit(Fixtures.votes(votes, seed: seed).map { Submission($0, by: Fixtures.importer) })
        return ledger
    }

    func checkpoint(_ ledger: Ledger) throws -> SignedNote {
        let receipt = try #require(try ledger.submit(Submission(.takeCheckpoint(.request), by: Fixtures.admin)).receipt)
        return try #require(try ledger.reader.checkpoint(at: receipt.seq).note)
    }

    @Test func tileNodesGiveTheLedgersRootsAndProofs() throws {
        let dir = TemporaryDirectory()
        let ledger = try ledger(dir, votes: 0..<700)
        let writer = TileWriter(directory: dir.sub("tiles"), reader: ledger.reader)
        // Published in steps, as a daemon does; each step's tiles give each size's root.
        for size in [1, 6, 255, 256, 257, 511, 512, 600, 705] as [UInt64] where size <= ledger.size {
            _ = try writer.writeTiles(size: size, from: writer.published()?.size ?? 0, entriesFrom: 0)
            let nodes = TileNodes(size: size) { path in
                guard let bytes = FileManager.default.contents(atPath: dir.sub("tiles/" + path)) else { throw TileError("no \(path)") }
                return Array(bytes)
            }
            #expect(try MerkleTree.root(size: size, nodes.node) == (try ledger.reader.root(size: size).root), "size \(size)")
            for old in [1, size / 3, size - 1] where old > 0 && old < size {
                #expect(try MerkleTree.consistencyProof(oldSize: old, newSize: size, nodes.node)
                        == (try ledger.reader.consistencyProof(oldSize: old, newSize: size)), "\(old) to \(size)")
            }
            for seq in [1, size / 2 + 1, size] {
                #expect(try MerkleTree.inclusionProof(index: seq - 1, size: size, nodes.node)
                        == (try ledger.reader.inclusionProof(seq: seq, size: size)), "seq \(seq) of \(size)")
            }
        }
        // A cut tile is refused, naming it.
        let nodes = TileNodes(size: 300) { _ in [UInt8](repeating: 0, count: 100) }
        #expect(throws: TileError.self) { try MerkleTree.root(size: 300, nodes.node) }
    }

    /// Bundles withheld, then released, then a rollback of the directory: what it holds ends
    /// byte for byte as a fresh write of the same tree.
    @Test func withheldBundlesAndAnotherHistoryEndAsAFreshWrite() throws {
        let dir = TemporaryDirectory()
        let ledger = try ledger(dir, votes: 0..<300)
        let tiles = dir.sub("tiles")
        let writer = TileWriter(directory: tiles, reader: ledger.reader)
        #expect(try writer.update(to: try checkpoint(ledger), entries: true).entries > 0)
        _ = try ledger.submit(Fixtures.votes(300..<600).map { Submission($0, by: Fixtures.importer) })
        let withheld = try writer.update(to: try checkpoint(ledger), entries: false)
        #expect(withheld.entries < ledger.size - 1)
        _ = try ledger.submit(Fixtures.votes(600..<1000).map { Submission($0, by: Fixtures.importer) })
        let released = try writer.update(to: try checkpoint(ledger), entries: true)
        #expect(released.entries == ledger.size - 1)

        // Another ledger under the same key and origin, put in the same directory while sealed.
        let other = TemporaryDirectory()
        let fork = try self.ledger(other, votes: 0..<900, seed: 7)
        let forkNote = try checkpoint(fork)
        let forked = try TileWriter(directory: tiles, reader: fork.reader).update(to: forkNote, entries: false)
        #expect(forked.replaced != nil && forked.from == 0)
        #expect(!FileManager.default.fileExists(atPath: tiles + "/tile/entries"), "another history's bundles stayed")
        let fresh = other.sub("fresh")
        _ = try TileWriter(directory: fresh, reader: fork.reader).update(to: forkNote, entries: false)
        for path in try #require(FileManager.default.enumerator(atPath: fresh)?.allObjects as? [String]) {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: fresh + "/" + path, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            #expect(FileManager.default.contents(atPath: fresh + "/" + path) == FileManager.default.contents(atPath: tiles + "/" + path), "\(path)")
        }
    }

    /// The monitor over HTTP: a log that grew is followed; tiles that are merely broken are
    /// exit 1; a log that shows another tree is exit 2, naming both checkpoints.
    @Test func theMonitorTellsABrokenPublicationFromASplitView() throws {
        let dir = TemporaryDirectory()
        let tiles = dir.sub("tiles")
        let ledger = try ledger(dir, votes: 0..<300)
        let writer = TileWriter(directory: tiles, reader: ledger.reader)
        _ = try writer.update(to: try checkpoint(ledger))
        let http = try StaticHTTPServer(directory: tiles)
        defer { http.stop() }
        try (key.publicKey.hex + "\n").write(toFile: dir.sub("log.pub"), atomically: true, encoding: .utf8)
        func monitor() throws -> (status: Int32, stdout: String, stderr: String) {
            try runTool("ballot-replay", ["monitor", "--tiles", http.url, "--state", dir.sub("state"), "--pubkey", dir.sub("log.pub")])
        }
        #expect(try monitor().status == 0)
        _ = try ledger.submit(Fixtures.votes(300..<700).map { Submission($0, by: Fixtures.importer) })
        _ = try writer.update(to: try checkpoint(ledger))
        let grew = try monitor()
        #expect(grew.status == 0 && grew.stdout.contains("extends"), "\(grew)")

        // The log grows again, and a level-0 tile the consistency proof from the remembered
        // tree needs is altered: a broken publication (1), not a fork; mended, it is followed.
        let remembered = try #require(writer.published()?.size)
        _ = try ledger.submit(Fixtures.votes(700..<1100).map { Submission($0, by: Fixtures.importer) })
        _ = try writer.update(to: try checkpoint(ledger))
        let tile = tiles + "/tile/0/" + String(format: "%03d", remembered / 256)
        let good = try #require(FileManager.default.contents(atPath: tile))
        var bad = good
        bad[Int((remembered - 1) % 256) * 32 + 5] ^= 1
        try bad.write(to: URL(fileURLWithPath: tile))
        let broken = try monitor()
        #expect(broken.status == 1 && broken.stderr.contains("consistency proof"), "\(broken)")
        try good.write(to: URL(fileURLWithPath: tile))
        #expect(try monitor().status == 0)

        // Another tree under the same key and origin: a split view.
        let other = TemporaryDirectory()
        let fork = try self.ledger(other, votes: 0..<1500, seed: 7)
        _ = try TileWriter(directory: tiles, reader: fork.reader).update(to: try checkpoint(fork))
        let split = try monitor()
        #expect(split.status == 2, "\(split)")
        #expect(split.stderr.contains("split view") && split.stderr.contains("seen before"), "\(split)")
    }
}
