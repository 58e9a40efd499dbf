import Testing
import Foundation
import TestSupport
import BallotStore
@testable import BallotLedger
@testable import BallotFormat
@testable import BallotAudit
@testable import BallotDomain

/// Small ledgers committed under `Tests/Fixtures/golden/`, each written once by the code of its
/// day and never again: every kind of event, a certified election among them. They must verify
/// forever, through `Audit.verify` with their key pinned and through a writer's verifying open,
/// and give the numbers recorded beside them. A change to the rules that breaks one is a change
/// that needs a new rules version (docs/ledger-format.md, "Rules versions").
///
/// `GOLDEN_WRITE=DIR swift test --filter GoldenLedgerTests` writes today's ledger to DIR, to be
/// committed as a new fixture beside the old ones.
@Suite struct GoldenLedgerTests {
    static let directory = "\(Fixtures.repositoryRoot)/Tests/Fixtures/golden"

    /// Every fixture committed.
    static var fixtures: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }

    /// Each rules version has a fixture of its own: its elections were decided by it.
    @Test func thereAreFixturesOfEveryRulesVersion() throws {
        #expect(Self.fixtures.contains("v1-before-rules-versions"), "\(Self.fixtures)")
        var versions = Set<RulesVersion>()
        for name in Self.fixtures {
            let dir = TemporaryDirectory("golden")
            try FileManager.default.copyItem(atPath: "\(Self.directory)/\(name)/data.mdb", toPath: dir.sub("data.mdb"))
            let (state, _) = try Audit.replay(LedgerReader.openReadOnly(path: dir.path))
            versions.formUnion(state.elections.map(\.definition.rules))
        }
        #expect(versions == Set(RulesVersion.allCases), "\(versions)")
    }

    @Test(arguments: fixtures) func aCommittedLedgerStillVerifies(_ name: String) throws {
        let dir = TemporaryDirectory("golden")
        let fixture = "\(Self.directory)/\(name)"
        try FileManager.default.copyItem(atPath: "\(fixture)/data.mdb", toPath: dir.sub("data.mdb"))
        let expected = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(fixture)/expected.json"))) as? [String: Any])
        let key = try #require(Digest32(hex: expected["checkpoint_public_key"] as? String ?? ""))

        let reader = try Ledger(path: dir.path, options: Ledger.Options(environment: EnvironmentOptions(readOnly: true), check: .none))
        let report = try Audit.verify(reader.reader, pinnedKey: key)
        #expect(report.findings.isEmpty, "\(report.findings)")
        #expect(report.exitCode == 0)
        #expect(report.events == expected["size"] as? UInt64 ?? UInt64(expected["size"] as? Int ?? -1))
        #expect(report.root.hex == expected["root"] as? String)
        let rankings = expected["rankings"] as? [String: String] ?? [:]
        #expect(!rankings.isEmpty)
        for (election, ranking) in rankings {
            let stored = try #require(try reader.reader.projection(Slug(unchecked: election), .ranking))
            #expect(String(decoding: stored, as: UTF8.self) == ranking, "\(election)")
            let state = try #require(report.state[Slug(unchecked: election)])
            #expect(Ranking(state).json.text == ranking, "\(election): the replay's ranking")
        }
        reader.close()

        // The independent verifier, in Python, passes it with the key pinned.
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", "\(Fixtures.repositoryRoot)/scripts/verify-ledger.py", dir.path, "--pubkey", key.hex]
        python.standardOutput = FileHandle.nullDevice
        try python.run()
        python.waitUntilExit()
        #expect(python.terminationStatus == 0, "scripts/verify-ledger.py refused \(name)")

        // A writer opens it, verifying, and goes on appending to it: its next checkpoint is a
        // note (type 13), after the older ones, and both verifiers pass the whole.
        let writer = try Ledger(path: dir.path, options: Fixtures.options(), clock: ManualClock("2023-01-01T00:00:00Z"),
                                checkpointKey: try CheckpointKey(seed: GoldenLedger.keySeed))
        #expect(writer.size == report.events && writer.root == report.root)
        _ = try writer.submit(Fixtures.setUpCommands(Slug(unchecked: "after-the-notes")).map { Submission($0, by: Fixtures.admin) })
        let noted = try #require(try writer.submit(Submission(.takeCheckpoint(.request), by: Fixtures.admin)).receipt)
        #expect(try writer.reader.record(noted.seq)?.event.kind == .checkpointNoted)
        writer.close()
        let reopened = try Ledger(path: dir.path, options: Ledger.Options(environment: EnvironmentOptions(readOnly: true), check: .none))
        let after = try Audit.verify(reopened.reader, pinnedKey: key)
        #expect(after.findings.isEmpty && after.events == noted.seq, "\(after.findings)")
        reopened.close()
        #expect(try runPythonVerifier([dir.path, "--pubkey", key.hex]).status == 0, "scripts/verify-ledger.py refused \(name) with a note after it")
    }

    @Test func todaysLedgerCanBeWritten() throws {
        let target = ProcessInfo.processInfo.environment["GOLDEN_WRITE"]
        let dir = TemporaryDirectory("golden-write")
        let expected = try GoldenLedger.write(to: dir.sub("ledger"))
        // Today's code verifies what it writes (and the committed fixtures above what older code wrote).
        #expect(expected["size"] as? UInt64 ?? 0 > 100)
        guard let target else { return }
        try Self.copy(dir.sub("ledger"), expected, to: target)
    }

    /// The small ledger the audit fuzz target's long run alters (`scripts/fuzz`): every kind of
    /// event the big one has, in 23 events, so that an input audits some eight times faster.
    /// `FUZZ_LEDGER_WRITE=DIR swift test --filter GoldenLedgerTests` writes it.
    @Test func theSmallFuzzLedgerCanBeWritten() throws {
        let dir = TemporaryDirectory("golden-write-small")
        let expected = try GoldenLedger.writeSmall(to: dir.sub("ledger"))
        #expect(expected["size"] as? UInt64 ?? 0 > 16, "a stored Merkle node needs 16 events")
        guard let target = ProcessInfo.processInfo.environment["FUZZ_LEDGER_WRITE"] else { return }
        try Self.copy(dir.sub("ledger"), expected, to: target)
    }

    /// A ledger of a jury that signs (docs/ledger-format.md §3.2): keyed jurors, signed scores
    /// and an amendment, the result put to the jury with a justification and certified by two
    /// co-signatures. `GOLDEN_WRITE_SIGNED=DIR swift test --filter GoldenLedgerTests` writes it.
    @Test func theSignedJuryLedgerCanBeWritten() throws {
        let dir = TemporaryDirectory("golden-write-signed")
        let expected = try GoldenLedger.writeSignedJury(to: dir.sub("ledger"))
        guard let target = ProcessInfo.processInfo.environment["GOLDEN_WRITE_SIGNED"] else { return }
        try Self.copy(dir.sub("ledger"), expected, to: target)
    }

    static func copy(_ ledger: String, _ expected: [String: Any], to target: String) throws {
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(ledger)/data.mdb", toPath: "\(target)/data.mdb")
        try JSONSerialization.data(withJSONObject: expected, options: [.prettyPrinted, .sortedKeys])
            .write(to: URL(fileURLWithPath: "\(target)/expected.json"))
    }
}

/// The ledger the fixtures hold: deterministic (a manual clock, a fixed checkpoint key, the
/// fixtures' voter secret), with every kind of event.
enum GoldenLedger {
    static let keySeed = (0..<32).map { UInt8(truncatingIfNeeded: $0 * 13 + 5) }

    /// Writes a ledger to `path` (compacted): `story` appends to it, through `must`, which
    /// throws on any refusal, with the fixtures' manual clock and checkpoint key. Returns what
    /// `expected.json` records.
    static func written(to path: String, _ story: (Ledger, ManualClock, ([Submission]) throws -> [Outcome]) throws -> Void) throws -> [String: Any] {
        let scratch = TemporaryDirectory("golden-scratch")
        let clock = ManualClock(Fixtures.now)
        let key = try CheckpointKey(seed: keySeed)
        let ledger = try Ledger(path: scratch.sub("ledger"), options: Fixtures.options(), clock: clock, checkpointKey: key)
        func must(_ batch: [Submission]) throws -> [Outcome] {
            let outcomes = try ledger.submit(batch)
            for (s, o) in zip(batch, outcomes) where o.receipt == nil { throw DaemonTestError("golden ledger: \(s.command.name) refused: \(o)") }
            return outcomes
        }
        try story(ledger, clock, must)
        var rankings: [String: String] = [:]
        for election in ledger.state.elections {
            rankings[election.id.value] = String(decoding: try ledger.reader.projection(election.id, .ranking)!, as: UTF8.self)
        }
        let expected: [String: Any] = [
            "size": ledger.size, "root": ledger.root.hex, "checkpoint_public_key": key.publicKey.hex,
            "format_version": Int(RecordCodec.formatVersion), "rankings": rankings,
        ]
        _ = try ledger.reader.backup(to: path)
        ledger.close()
        return expected
    }

    /// The golden ledger of today's code: every kind of event, two elections.
    static func write(to path: String) throws -> [String: Any] {
        try written(to: path) { ledger, clock, must in
            let award = Fixtures.electionID, early = Fixtures.slug("early-2022")
            let admin = Fixtures.admin
            // An election with the whole story: nominees, jurors, votes (some keyed, one
            // invalidated), an import's record, scores, closes, certification and checkpoints.
            _ = try must(Fixtures.setUpCommands(award).map { Submission($0, by: admin) })
            let votes = try must(Fixtures.votes(0..<60, election: award).enumerated().map {
                Submission($1, by: Fixtures.importer, idempotencyKey: $0 % 3 == 0 ? "web-\($0)" : "")
            })
            _ = try must([Submission(.invalidateVote(election: award, vote: votes[7].receipt!.seq, reason: "a test of invalidation"), by: admin)])
            _ = try must([Submission(.recordImport(ImportRecord(
                file: "golden.csv", election: award, bytes: 4_096, sha256: Digest32(hex: String(repeating: "ab", count: 32))!,
                rows: 62, accepted: 60, alreadyPresent: 0, refused: [ImportRecord.ReasonCount(reason: "duplicate_vote", count: 2)],
                firstSeq: votes[0].receipt!.seq, lastSeq: votes[59].receipt!.seq)), by: Fixtures.importer)])
            _ = try must([Submission(.takeCheckpoint(.request), by: admin)])
            var scores: [Submission] = []
            for (j, juror) in Fixtures.jurors.enumerated() {
                for (n, nominee) in Fixtures.nominees.enumerated() {
                    for (c, criterion) in Fixtures.criteria.enumerated() {
                        scores.append(Submission(.scoreJury(election: award, juror: Fixtures.slug(juror), nominee: Fixtures.slug(nominee),
                                                            criterion: Fixtures.slug(criterion), score: Int32(1 + (j + 2 * n + 3 * c) % 10)),
                                                 by: Fixtures.juror, idempotencyKey: "score-\(j)-\(n)-\(c)"))
                    }
                }
        }
        _ = try must(scores)
        // A score changed: the later one counts.
        _ = try must([Submission(.scoreJury(election: award, juror: Fixtures.slug("jury-a"), nominee: Fixtures.slug("kinn"),
                                            criterion: Fixtures.slug("results"), score: 10), by: Fixtures.juror)])
        clock.set("2022-11-12T09:00:00Z")
        _ = try must([Submission(.closeVoting(election: award), by: admin)])
        _ = try must([Submission(.closeJury(election: award), by: admin)])
        clock.set("2022-11-17T10:00:00Z")
        _ = try must([Submission(.certifyResult(election: award), by: admin)])
        // A second election, opened early by hand and closed by hand, with its own votes.
        var definition = Fixtures.definition(early, publicStandings: true)
        definition.opensAt = Fixtures.time("2022-12-01T00:00:00Z")
        definition.closesAt = Fixtures.time("2022-12-31T00:00:00Z")
        _ = try must([Submission(.defineElection(definition), by: admin)]
                     + ["bodo", "kinn"].map { Submission(.addNominee(election: early, nomination: Fixtures.nomination($0)), by: admin) })
        clock.set("2022-11-20T08:00:00Z")
        _ = try must([Submission(.openVoting(election: early), by: admin)])
        clock.set("2022-11-21T08:00:00Z")
        _ = try must((0..<5).map { i in
            Submission(.castVote(election: early, nominee: Fixtures.slug(i % 2 == 0 ? "kinn" : "bodo"), voter: Fixtures.voter(i),
                                 castAt: nil, channel: "sms"), by: Fixtures.importer)
        })
        clock.set("2022-11-22T08:00:00Z")
        _ = try must([Submission(.closeVoting(election: early), by: admin)])
        }
    }

    /// The signing jury's ledger (above): deterministic keys, three jurors, a quorum of two.
    static func writeSignedJury(to path: String) throws -> [String: Any] {
        try written(to: path) { ledger, clock, must in
            let award = Fixtures.slug("signed-2023"), admin = Fixtures.admin
            func signed(_ signer: SignerKey, _ statement: String) -> SentSignature {
                let line = signer.sign(statement)
                return SentSignature(keyID: line.keyID, bytes: line.bytes)
        }
        var definition = Fixtures.definition(award)
        definition.criteria = [definition.criteria[0]]
        definition.jurySignatures = JurySignaturePolicy(required: true, quorum: 2)
        let nominees = ["kinn", "bodo"].map(Fixtures.slug), criterion = definition.criteria[0].id
        let jurors = ["jury-a", "jury-b", "jury-c"].map(Fixtures.slug)
        let keys = try jurors.enumerated().map { i, j in
            try SignerKey(name: j.value, key: CheckpointKey(seed: (0..<32).map { UInt8(truncatingIfNeeded: $0 * 7 + 3 + i) }))
        }
        _ = try must([Submission(.defineElection(definition), by: admin)]
                     + nominees.map { Submission(.addNominee(election: award, nomination: Fixtures.nomination($0.value)), by: admin) }
                     + zip(jurors, keys).map { Submission(.addJuror(election: award, juror: $0, name: $0.value.uppercased(), key: $1.verifierKey.jurorKey), by: admin) })
        _ = try must((0..<6).map { i in
            Submission(.castVote(election: award, nominee: nominees[i % 3 == 0 ? 1 : 0], voter: Fixtures.voter(i),
                                 castAt: Fixtures.time("2022-11-0\(2 + i)T12:00:00Z"), channel: "web"), by: Fixtures.importer)
        })
        func score(_ j: Int, _ n: Int, _ value: Int32, supersedes: UInt64? = nil) -> Submission {
            let statement = JuryStatement.score(JuryScore(election: award, juror: jurors[j], nominee: nominees[n], criterion: criterion,
                                                          score: value, supersedes: supersedes), ledger: ledger.ledgerID)
            return Submission(.scoreJury(election: award, juror: jurors[j], nominee: nominees[n], criterion: criterion, score: value,
                                         signed: SignedScore(supersedes: supersedes, signature: signed(keys[j], statement))), by: Fixtures.juror)
        }
        let first = try must([score(0, 0, 8)])[0].receipt!.seq
        _ = try must([score(0, 1, 6), score(1, 0, 9), score(1, 1, 5), score(0, 0, 9, supersedes: first)])
        clock.set("2022-11-12T09:00:00Z")
        _ = try must([Submission(.closeVoting(election: award), by: admin), Submission(.closeJury(election: award), by: admin)])
        clock.set("2022-11-17T10:00:00Z")
        let proposal = try must([Submission(.certifyResult(election: award, justification: "Kinn viser vei.\n\nEt eksempel for andre."), by: admin)])[0].receipt!.seq
        let pending = ledger.state[award]!.proposal!.result
        for j in [0, 2] {
            let statement = JuryStatement.result(pending, proposedAt: proposal, ledger: ledger.ledgerID)
            _ = try must([Submission(.signResult(election: award, juror: jurors[j], signature: signed(keys[j], statement)), by: Fixtures.juror)])
        }
        guard ledger.state[award]?.certified?.cosignatures.count == 2 else { throw DaemonTestError("signed ledger: not certified") }
        }
    }

    /// The small ledger (above): one election of two nominees, one criterion and one juror,
    /// eight votes (some keyed, one invalidated), an import's record, scores (one amended),
    /// closes, certification and checkpoints.
    static func writeSmall(to path: String) throws -> [String: Any] {
        try written(to: path) { _, clock, must in
            let award = Fixtures.slug("small-2022"), admin = Fixtures.admin
            var definition = Fixtures.definition(award)
            definition.criteria = [definition.criteria[0]]
            let nominees = ["bodo", "kinn"]
            _ = try must([Submission(.defineElection(definition), by: admin)]
                         + nominees.map { Submission(.addNominee(election: award, nomination: Fixtures.nomination($0)), by: admin) }
                         + [Submission(.addJuror(election: award, juror: Fixtures.slug("jury-a"), name: "Jury A"), by: admin)])
            let votes = try must((0..<8).map { i in
                Submission(.castVote(election: award, nominee: Fixtures.slug(nominees[i % 3 == 0 ? 0 : 1]), voter: Fixtures.voter(i),
                                     castAt: Fixtures.time("2022-11-0\(2 + i % 7)T12:00:00Z"), channel: i % 2 == 0 ? "web" : "sms"),
                           by: Fixtures.importer, idempotencyKey: i % 3 == 0 ? "web-\(i)" : "")
            })
            _ = try must([Submission(.invalidateVote(election: award, vote: votes[2].receipt!.seq, reason: "a test of invalidation"), by: admin)])
            _ = try must([Submission(.recordImport(ImportRecord(
                file: "small.csv", election: award, bytes: 512, sha256: Digest32(hex: String(repeating: "cd", count: 32))!,
                rows: 9, accepted: 8, alreadyPresent: 0, refused: [ImportRecord.ReasonCount(reason: "duplicate_vote", count: 1)],
                firstSeq: votes[0].receipt!.seq, lastSeq: votes[7].receipt!.seq)), by: Fixtures.importer)])
            _ = try must([Submission(.takeCheckpoint(.request), by: admin)])
            let criterion = definition.criteria[0].id
            _ = try must(nominees.enumerated().map { n, nominee in
                Submission(.scoreJury(election: award, juror: Fixtures.slug("jury-a"), nominee: Fixtures.slug(nominee), criterion: criterion,
                                      score: Int32(4 + 3 * n)), by: Fixtures.juror, idempotencyKey: "score-\(n)")
            })
            _ = try must([Submission(.scoreJury(election: award, juror: Fixtures.slug("jury-a"), nominee: Fixtures.slug("bodo"),
                                                criterion: criterion, score: 9), by: Fixtures.juror)])
            clock.set("2022-11-12T09:00:00Z")
            _ = try must([Submission(.closeVoting(election: award), by: admin)])
            _ = try must([Submission(.closeJury(election: award), by: admin)])
            clock.set("2022-11-17T10:00:00Z")
            _ = try must([Submission(.certifyResult(election: award), by: admin)])
        }
    }
}
