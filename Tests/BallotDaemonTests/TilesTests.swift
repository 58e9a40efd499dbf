import Testing
import Foundation
import TestSupport

/// `ballotd` publishing tiles in `tiles_dir` (c2sp.org/tlog-tiles; Go reads them in InteropTests).
@Suite(.serialized, .timeLimit(.minutes(2))) struct TilesTests {
    /// Waits until the published checkpoint has `size` events.
    func waitForPublished(_ tiles: String, size: Int) throws {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let lines = ((try? String(contentsOfFile: tiles + "/checkpoint", encoding: .utf8)) ?? "").split(separator: "\n")
            if lines.count > 2, lines[1] == "\(size)" { return }
            usleep(50_000)
        }
        throw DaemonTestError("the tiles directory did not publish size \(size)")
    }

    /// A bundle holds each vote's nominee: while an election's standings are sealed, the hash
    /// tiles and the checkpoint are published, the bundles are not; the checkpoint taken when
    /// voting closes brings them all.
    @Test func entryBundlesWaitUntilNoElectionIsSealed() throws {
        let dir = TemporaryDirectory("ballotd")
        let tiles = dir.sub("tiles")
        let daemon = try DaemonProcess(directory: dir, environment: ["BALLOTD_TILES_DIR": tiles, "BALLOTD_CHECKPOINT_INTERVAL": "0"])
        let c = try BallotClient(socketPath: daemon.socketPath)
        #expect(try c.call(.electionDefine(DaemonTests.liveElection("live"))).isOK)
        for i in 0..<300 { #expect(try c.call(.vote("v\(i)@x.no", "kinn", election: "live", castAt: nil)).isOK) }
        let size = Int(try #require(try c.request(.checkpoint(latest: false), as: CheckpointTaken.self).checkpoint["size"]?.intValue))
        try waitForPublished(tiles, size: size)
        #expect(FileManager.default.fileExists(atPath: tiles + "/tile/0/000"))
        #expect(FileManager.default.fileExists(atPath: tiles + "/tile/0/001.p/\(size - 256)"))
        #expect(!FileManager.default.fileExists(atPath: tiles + "/tile/entries"))

        #expect(try c.call(.electionClose("live")).isOK)
        let closed = Int(try c.request(.status, as: StatusResult.self).ledgerSize)
        try waitForPublished(tiles, size: closed - 1)   // the checkpoint after the close covers what came before it
        #expect(FileManager.default.fileExists(atPath: tiles + "/tile/entries/000"))
        #expect(FileManager.default.fileExists(atPath: tiles + "/tile/entries/001.p/\(closed - 1 - 256)"))
        // The tiles are what anyone may read.
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: tiles + "/tile/entries/000")[.posixPermissions] as? Int)
        #expect(mode == 0o644)
        #expect(daemon.terminate() == 0)
    }
}
