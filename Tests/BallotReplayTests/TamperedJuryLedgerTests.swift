import Testing
import Foundation
import TestSupport

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

    @Test func thereAreRefusedOnesAndTheControl() {
        #expect(Self.fixtures.count == 5 && Self.fixtures.contains("jury-rewritten-unaltered"))
    }
}
