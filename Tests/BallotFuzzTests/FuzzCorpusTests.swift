import Testing
import Foundation
import BallotFuzz
import TestSupport

/// Every input committed under `Tests/Fixtures/fuzz/<target>/` (the seed corpora, and each
/// input a fuzzer once crashed on, as a regression) run through its target, in the ordinary
/// test build: a property that breaks traps the test process, naming the input's target.
@Suite struct FuzzCorpusTests {
    static let root = "\(Fixtures.repositoryRoot)/Tests/Fixtures/fuzz"

    static func inputs(_ target: FuzzTarget) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: "\(root)/\(target.rawValue)").sorted().map { "\(root)/\(target.rawValue)/\($0)" }
    }

    @Test(arguments: FuzzTarget.allCases)
    func everyCommittedInputKeepsItsTargetsProperty(_ target: FuzzTarget) throws {
        let paths = try Self.inputs(target)
        #expect(paths.count >= 3, "the \(target) corpus has \(paths.count) inputs")
        for path in paths {
            target.run(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        }
    }

    /// The audit corpus on the small golden ledger the long run alters, too: an input is four
    /// bytes an alteration for any ledger, and the long run's finds were found there (one once
    /// trapped in the votes-over-time series on an overflowing bucket's number).
    @Test func theAuditCorpusKeepsItsPropertyOnTheSmallLedger() throws {
        let paths = try Self.inputs(.audit)
        #expect(paths.contains { $0.hasSuffix("crash-small-ledger-series-bucket-overflow") })
        for path in paths {
            FuzzTarget.auditTheSmallLedger(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        }
    }

    /// The audit target's property is not vacuous: an input that alters nothing finds nothing,
    /// and each kind of alteration (bits flipped, a value cut short, bytes added, a record taken
    /// out) alters the ledger and is found. The golden ledger's 165 entries are its 149 events
    /// (the last at 148: bytes are added to it, not taken out) and then its 16 stored nodes.
    @Test func theAuditTargetAltersTheLedgerItAuditsAndTheAuditFindsIt() {
        #expect(FuzzTarget.audit([]) == (0, 0, 0))
        for how: UInt8 in [0x11, 0x02, 0x03] {
            for entry: UInt8 in [3, 40, 120, 148, 155, 164] {
                let (altered, alteredProtected, findings) = FuzzTarget.audit([0, entry, 9, how])
                #expect(altered == 1 && alteredProtected == 1, "entry \(entry), how \(how)")
                #expect(findings.map { $0 > 0 } ?? true, "entry \(entry), how \(how): nothing found")
            }
        }
        #expect(FuzzTarget.audit([]) == (0, 0, 0), "an input's changes are undone")
    }

    /// What the ledger cannot protect by itself, which fuzzing found: its last event is a
    /// checkpoint, whose actor is not signed, and nothing comes after it. Its uid changed from
    /// 0 to 10496, or its role from system to admin, is another ledger that verifies; only a
    /// checkpoint held elsewhere would tell. Every other byte of every entry is protected, and
    /// the audit finds it changed: the same flip in any other event (under a stored node or the
    /// last checkpoint's root) or stored node, and a flip in that checkpoint's signed part.
    @Test func theLastCheckpointsActorIsAllTheLedgerDoesNotProtect() {
        #expect(FuzzTarget.audit([0x15, 0x34, 0x15, 0x29]) == (1, 0, 0), "uid 0 to 10496")
        #expect(FuzzTarget.audit([0, 148, 18, 0x01]) == (1, 0, 0), "role system to admin")
        for entry: UInt8 in 0...164 where entry != 148 {
            let (altered, alteredProtected, findings) = FuzzTarget.audit([0, entry, 21, 0x29])
            #expect(altered == 1 && alteredProtected == 1 && (findings ?? 1) > 0, "entry \(entry)")
        }
        for offset: UInt8 in [2, 10, 40, 100, 200] {
            let (altered, alteredProtected, findings) = FuzzTarget.audit([0, 148, offset, 0x01])
            #expect(altered == 1 && alteredProtected == 1 && (findings ?? 1) > 0, "the last checkpoint at byte \(offset)")
        }
    }
}
