import Testing
import Foundation
import TestSupport
import BallotStore
import BallotFormat

/// Ledgers a hostile probe rewrote (2026-12-07): records of a signing jury changed, the Merkle
/// nodes rebuilt and the checkpoints after the change dropped, so that only the rules of
/// docs/ledger-format.md §3.2 can tell. The Python verifier accepted them until it checked a
/// certification against the proposal and co-signatures recorded before it; both verifiers
/// must now refuse each, and pass the same ledger rewritten without a change.
@Suite struct TamperedJuryLedgerTests {
    static let directory = "\(Fixtures.repositoryRoot)/Tests/Fixtures/tampered"
    static var fixtures: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasPrefix("jury-") }.sorted()
    }

    @Test(arguments: fixtures) func bothVerifiersJudgeItAlike(_ name: String) throws {
        let dir = TemporaryDirectory("tampered")
        try FileManager.default.copyItem(atPath: "\(Self.directory)/\(name)/data.mdb", toPath: dir.sub("data.mdb"))
        let expected: Int32 = name == "jury-rewritten-unaltered" ? 0 : 2
        let swift = try runTool("ballot-replay", ["verify", "--ledger", dir.path])
        #expect(swift.status == expected, "ballot-replay: \(swift.stdout.suffix(400))")
        let python = try runPythonVerifier([dir.path])
        #expect(python.status == expected, "verify-ledger.py: \(python.stdout.suffix(400)) \(python.stderr.suffix(400))")
    }

    /// The ledger id lives in meta, outside the tree; jurors' statements name it, and so does a
    /// checkpoint's default origin, under the log's signature. Another id written into meta
    /// (to pass a rehearsal's signatures off as this ledger's) is found by both verifiers.
    @Test func aLedgerIdRewrittenInMetaIsFound() throws {
        let dir = TemporaryDirectory("ledger-id")
        try FileManager.default.copyItem(atPath: "\(Fixtures.repositoryRoot)/Tests/Fixtures/golden/v2-2026-12-07-signed-jury/data.mdb", toPath: dir.sub("data.mdb"))
        let env = try Environment(path: dir.path, options: EnvironmentOptions(mapSize: 16 << 20))
        let meta = try env.openDatabase(LedgerKeys.meta, create: false)
        try env.write { txn in try txn.put(Array("ledger_id".utf8), [UInt8](repeating: 0xAB, count: 16), in: meta) }
        env.close()
        let swift = try runTool("ballot-replay", ["verify", "--ledger", dir.path, "--json"])
        #expect(swift.status == 2)
        #expect(swift.stdout.contains("names another ledger id") && swift.stdout.contains("does not verify with their key"), "\(swift.stdout.prefix(2000))")
        let python = try runPythonVerifier([dir.path])
        #expect(python.status == 2, "\(python.stdout)")
    }

    @Test func thereAreRefusedOnesAndTheControl() {
        #expect(Self.fixtures.count == 5 && Self.fixtures.contains("jury-rewritten-unaltered"))
    }
}
