import Testing
import Foundation
import PropertyBased
import TestSupport
import BallotClient
import BallotStore
@testable import BallotLedger
@testable import BallotFormat
@testable import BallotAudit
@testable import BallotDomain

/// A follower's writer (`Ledger.replicate`): the golden ledgers, sent in chunks of every size,
/// come out byte for byte (same root, same projections, same id), and a record altered in any
/// of the ways an auditor catches is refused by name with nothing of its chunk stored.
@Suite struct ReplicationTests {
    static let golden = "\(Fixtures.repositoryRoot)/Tests/Fixtures/golden"
    static var fixtures: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: golden)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }

    /// A golden ledger, copied, and its records.
    struct Primary {
        let reader: LedgerReader
        let ledgerID: [UInt8]
        let size: UInt64
        let key: Digest32
        let dir: TemporaryDirectory

        init(_ name: String) throws {
            dir = TemporaryDirectory("primary")
            try FileManager.default.copyItem(atPath: "\(ReplicationTests.golden)/\(name)/data.mdb", toPath: dir.sub("data.mdb"))
            let expected = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(ReplicationTests.golden)/\(name)/expected.json"))) as? [String: Any])
            key = try #require(Digest32(hex: expected["checkpoint_public_key"] as? String ?? ""))
            reader = try LedgerReader.openReadOnly(path: dir.path)
            ledgerID = try reader.ledgerID()
            size = try reader.size()
        }

        func chunk(from first: UInt64, count: Int) throws -> RecordChunk {
            try reader.chunk(from: first, maxRecords: count, maxBytes: .max)
        }

        /// The records from `first` as they are stored, one array each.
        func records(from first: UInt64, count: Int) throws -> [[UInt8]] {
            let chunk = try chunk(from: first, count: count)
            return (0..<chunk.count).map { i in chunk.withRecord(i) { Array($0) } }
        }
    }

    /// A chunk of these records' bytes, the first being event `first`.
    static func chunk(_ records: some Sequence<[UInt8]>, first: UInt64) -> RecordChunk {
        var chunk = RecordChunk(first: first)
        for r in records { r.withUnsafeBytes { chunk.append($0) } }
        return chunk
    }

    static func follower(_ dir: TemporaryDirectory) throws -> Ledger {
        try Ledger(path: dir.path, options: Fixtures.options())
    }

    @Test(arguments: fixtures) func aGoldenLedgerReplicatesByteForByte(_ name: String) throws {
        let primary = try Primary(name)
        let dir = TemporaryDirectory("follower")
        var ledger = try Self.follower(dir)
        #expect(ledger.ledgerID != primary.ledgerID)
        var rng = SplitMix64(seed: 7)
        // Chunks of 1 to 40 records; the follower is closed and opened again half way.
        while ledger.size < primary.size {
            let chunk = try primary.chunk(from: ledger.size + 1, count: Int(rng.next() % 40) + 1)
            _ = try ledger.replicate(chunk, from: Ledger.Primary(ledgerID: primary.ledgerID, pinnedKey: primary.key))
            if ledger.size >= primary.size / 2 && ledger.size - UInt64(chunk.count) < primary.size / 2 {
                ledger.close()
                ledger = try Self.follower(dir)
            }
        }
        #expect(ledger.ledgerID == primary.ledgerID)
        #expect(try ledger.reader.ledgerID() == primary.ledgerID)
        #expect(ledger.root == (try primary.reader.root()).root)
        // The same root at every size a checkpoint signs, and at every size at all.
        for size in 1...primary.size {
            #expect(try ledger.reader.root(size: size).root == primary.reader.root(size: size).root, "size \(size)")
        }
        #expect(try ledger.reader.storedProjections() == primary.reader.storedProjections())
        let report = try Audit.verify(ledger.reader, pinnedKey: primary.key)
        #expect(report.findings.isEmpty, "\(report.findings)")
        ledger.close()
        // Its kept state opens, and a full check agrees.
        let reopened = try Ledger(path: dir.path, options: Fixtures.options(check: .full))
        #expect(reopened.opening.findings.isEmpty)
        #expect(reopened.root == (try primary.reader.root()).root)
        reopened.close()
    }

    /// Each alteration is refused naming the event, and leaves the follower exactly as it was:
    /// the chunk's good records before the bad one are not stored either, and the true chunk is
    /// taken afterwards.
    @Test func anAlteredRecordIsRefusedAndNothingOfItsChunkIsStored() throws {
        let primary = try Primary("v3-2026-12-06-notes")
        let all = try primary.records(from: 1, count: Int(primary.size))
        let checkpoints = try (1...primary.size).filter { seq in
            if case .checkpointSigned = try primary.reader.record(seq)?.event { return true }
            return false
        }
        let votes = try (1...primary.size).filter { seq in
            if case .voteCast = try primary.reader.record(seq)?.event { return true }
            return false
        }
        let firstCheckpoint = try #require(checkpoints.first)
        let secondVote = votes[1]
        let dir = TemporaryDirectory("follower")
        let ledger = try Self.follower(dir)
        defer { ledger.close() }
        let from = Ledger.Primary(ledgerID: primary.ledgerID, pinnedKey: primary.key)

        // The first few events go in; everything after is tried against them.
        let start = UInt64(3)
        _ = try ledger.replicate(Self.chunk(all[0..<Int(start)], first: 1), from: from)
        let before = (ledger.size, ledger.root, try ledger.reader.storedProjections())

        struct Case { let name: String; let records: [[UInt8]]; let first: UInt64; let expect: String; let seq: UInt64; var key: Digest32? = nil }
        var cases: [Case] = []
        var rest = Array(all[Int(start)...])
        // A byte of the checkpoint's signature (its last bytes) flipped.
        var forged = rest
        forged[Int(firstCheckpoint - start - 1)][forged[Int(firstCheckpoint - start - 1)].count - 3] ^= 0x01
        cases.append(Case(name: "forged signature", records: forged, first: start + 1, expect: "signature", seq: firstCheckpoint))
        // The same checkpoint, the key pinned to another.
        cases.append(Case(name: "another key pinned", records: rest, first: start + 1, expect: "not the key given", seq: firstCheckpoint,
                          key: Digest32(hex: String(repeating: "ab", count: 32))!))
        // A vote dropped: its checkpoint then signs another root.
        var dropped = rest
        let dropAt = Int(secondVote - start - 1)
        dropped.remove(at: dropAt)
        if dropped.count > Int(firstCheckpoint - start - 1) {
            cases.append(Case(name: "vote removed", records: dropped, first: start + 1, expect: "", seq: 0))
        }
        // A vote repeated: the same voter twice, or the same idempotency key.
        var repeated = rest
        repeated.insert(rest[dropAt], at: dropAt + 1)
        cases.append(Case(name: "vote repeated", records: repeated, first: start + 1, expect: "", seq: secondVote + 1))
        // The same voter again under a new idempotency key: only the rules catch it.
        var again = rest
        var revote = try #require(try primary.reader.record(secondVote))
        revote.idempotencyKey = "another-key"
        revote.seq = secondVote + 1
        again.insert(RecordCodec.encode(revote), at: dropAt + 1)
        cases.append(Case(name: "voter votes twice", records: again, first: start + 1, expect: "the rules refuse", seq: secondVote + 1))
        // Bytes that do not decode.
        var garbage = rest
        garbage[0] = [0xFF, 0x00, 0x13]
        cases.append(Case(name: "garbage", records: garbage, first: start + 1, expect: "does not decode", seq: start + 1))
        // A chunk that skips an event.
        rest.removeFirst()
        cases.append(Case(name: "gap", records: rest, first: start + 2, expect: "the next it takes is event \(start + 1)", seq: start + 2))

        for c in cases {
            let attempt = Self.chunk(c.records, first: c.first)
            let refused = #expect(throws: LedgerError.self, "\(c.name)") {
                try ledger.replicate(attempt, from: Ledger.Primary(ledgerID: primary.ledgerID, pinnedKey: c.key ?? primary.key))
            }
            if case .unverifiedRecord(let seq, let reason)? = refused {
                if c.seq > 0 { #expect(seq == c.seq, "\(c.name): \(reason)") }
                if !c.expect.isEmpty { #expect(reason.contains(c.expect), "\(c.name): \(reason)") }
            } else {
                Issue.record("\(c.name): \(String(describing: refused))")
            }
            #expect(ledger.size == before.0, "\(c.name)")
            #expect(ledger.root == before.1, "\(c.name)")
            #expect(try ledger.reader.storedProjections() == before.2, "\(c.name)")
        }
        // After every refusal the true records still go in, and the result verifies.
        _ = try ledger.replicate(Self.chunk(all[Int(start)...], first: start + 1), from: from)
        #expect(ledger.root == (try primary.reader.root()).root)
        #expect(try Audit.verify(ledger.reader, pinnedKey: primary.key).findings.isEmpty)
    }

    /// The bulk path (the audit's engine over a chunk) decides as the record-at-a-time path
    /// does: the golden ledgers, in chunks of random sizes, each ledger's records altered at
    /// random (a byte changed, a record dropped, repeated or swapped with the next): both
    /// accept a chunk or both refuse it at the same event, and after every accepted chunk both
    /// followers hold the same records, root, projections, kept state and voters.
    @Test func theBulkPathDecidesAsTheRecordAtATimePath() async throws {
        let primaries = try Self.fixtures.map { try Primary($0) }
        let records = try primaries.map { try $0.records(from: 1, count: Int($0.size)) }
        let runs = Int(ProcessInfo.processInfo.environment["BALLOT_PROPERTY_RUNS"] ?? "") ?? 60
        var refusals = 0, acceptedWhole = 0
        await propertyCheck(count: runs, input: zip(Gen.int(in: 0...(primaries.count - 1)), Gen.int(in: 0...Int.max))) { which, seed in
            var rng = SplitMix64(seed: UInt64(seed))
            let primary = primaries[which]
            var altered = records[which]
            let at = Int(rng.next() % UInt64(altered.count))
            switch rng.next() % 5 {
            case 0: break
            case 1: altered[at][Int(rng.next() % UInt64(altered[at].count))] ^= UInt8(1 << (rng.next() % 8))
            case 2: altered.remove(at: at)
            case 3: altered.insert(altered[at], at: at)
            default: if at + 1 < altered.count { altered.swapAt(at, at + 1) }
            }
            let dirs = (TemporaryDirectory("bulk"), TemporaryDirectory("one-by-one"))
            let bulk = try Self.follower(dirs.0), oneByOne = try Self.follower(dirs.1)
            defer { bulk.close(); oneByOne.close() }
            // Slices small enough that most chunks are verified while the slice before commits.
            bulk.sliceRecords = Int(rng.next() % 16) + 1
            let from = Ledger.Primary(ledgerID: primary.ledgerID, pinnedKey: rng.next() % 2 == 0 ? primary.key : nil)
            var next = 0
            while next < altered.count {
                let n = min(Int(rng.next() % 48) + 1, altered.count - next)
                let chunk = Self.chunk(altered[next..<(next + n)], first: UInt64(next + 1))
                func outcome(_ ledger: Ledger, recordByRecord: Bool) -> String {
                    do {
                        _ = try ledger.replicate(chunk, from: from, recordByRecord: recordByRecord)
                        return "stored"
                    } catch LedgerError.unverifiedRecord(let seq, _) {
                        return "refused at \(seq)"
                    } catch {
                        return "\(error)"
                    }
                }
                let a = outcome(bulk, recordByRecord: false), b = outcome(oneByOne, recordByRecord: true)
                #expect(a == b, "chunk \(next + 1)…\(next + n) of \(Self.fixtures[which]), seed \(seed)")
                // The bulk path stores the slices before a refused one: both then hold as much.
                if a != "stored", bulk.size > oneByOne.size {
                    let verified = Self.chunk(altered[Int(oneByOne.size)..<Int(bulk.size)], first: oneByOne.size + 1)
                    _ = try oneByOne.replicate(verified, from: from, recordByRecord: true)
                }
                #expect(bulk.size == oneByOne.size && bulk.root == oneByOne.root)
                #expect(try bulk.reader.storedProjections() == oneByOne.reader.storedProjections())
                #expect(bulk.state.image == oneByOne.state.image)
                #expect(bulk.writer.lastTimestamp == oneByOne.writer.lastTimestamp)
                #expect(bulk.writer.idempotency.count == oneByOne.writer.idempotency.count)
                #expect(bulk.state.voters.keys.count == oneByOne.state.voters.keys.count)
                guard a == "stored" else { refusals += 1; break }
                next += n
            }
            if next == altered.count { acceptedWhole += 1 }
            #expect(try bulk.reader.chunk(from: 1, maxRecords: .max, maxBytes: .max) == oneByOne.reader.chunk(from: 1, maxRecords: .max, maxBytes: .max))
        }
        // Not vacuous: some runs were refused part way, and some went through whole.
        #expect(refusals > 0 && acceptedWhole > 0, "\(refusals) refused, \(acceptedWhole) whole")
    }

    /// Unpinned, a follower takes the first checkpoint's key for the ledger's: a later
    /// checkpoint signed by another key is refused, though it comes in a chunk of its own
    /// (each chunk's check starts afresh), by either path.
    @Test(arguments: [false, true]) func aCheckpointSignedByAnotherKeyInALaterChunkIsRefused(recordByRecord: Bool) throws {
        let primary = try Primary("v3-2026-12-06-notes")
        let all = try primary.records(from: 1, count: Int(primary.size))
        let checkpoints = try (1...primary.size).filter { seq in
            if case .checkpointSigned = try primary.reader.record(seq)?.event { return true }
            return false
        }
        try #require(checkpoints.count >= 2)
        let second = checkpoints[1]
        var record = try #require(try primary.reader.record(second))
        guard case .checkpointSigned(var checkpoint) = record.event else { return }
        let other = CheckpointKey()
        checkpoint.publicKey = other.publicKey
        checkpoint.signature = other.sign(checkpoint.signedMessage)
        record.event = .checkpointSigned(checkpoint)
        var altered = all
        altered[Int(second - 1)] = RecordCodec.encode(record)
        let dir = TemporaryDirectory("follower")
        let ledger = try Self.follower(dir)
        defer { ledger.close() }
        let from = Ledger.Primary(ledgerID: primary.ledgerID)
        _ = try ledger.replicate(Self.chunk(altered[0..<Int(second - 1)], first: 1), from: from, recordByRecord: recordByRecord)
        let refused = #expect(throws: LedgerError.self) {
            try ledger.replicate(Self.chunk(altered[Int(second - 1)...], first: second), from: from, recordByRecord: recordByRecord)
        }
        guard case .unverifiedRecord(let seq, let reason)? = refused else { Issue.record("\(String(describing: refused))"); return }
        #expect(seq == second && reason.contains("signing key changed"), "\(seq): \(reason)")
        #expect(ledger.size == second - 1)
    }

    /// The rules look back only at events before the one they judge: an invalidation of the
    /// vote that follows it (which no writer could have decided) is refused by both paths,
    /// though the vote is there in the same chunk (the rule pass is the audit's too).
    @Test(arguments: [false, true]) func anInvalidationOfALaterVoteIsRefused(recordByRecord: Bool) throws {
        let dirs = (primary: TemporaryDirectory("primary"), follower: TemporaryDirectory("follower"))
        let primary = try Fixtures.ledgerWithElection(in: dirs.primary)
        defer { primary.close() }
        let vote = try #require(try primary.submit(Submission(Fixtures.votes(0..<1)[0], by: Fixtures.importer)).receipt?.seq)
        _ = try primary.submit(Submission(.invalidateVote(election: Fixtures.electionID, vote: vote, reason: "a test"), by: Fixtures.admin))
        let all = try primary.reader.chunk(from: 1, maxRecords: .max, maxBytes: .max)
        let records = (0..<all.count).map { i in all.withRecord(i) { Array($0) } }
        // The invalidation moved before the vote, naming it where it now stands.
        var castVote = try #require(try primary.reader.record(vote)), invalidation = try #require(try primary.reader.record(vote + 1))
        guard case .voteInvalidated(var x) = invalidation.event else { Issue.record("\(invalidation.event)"); return }
        x.vote = vote + 1
        invalidation.event = .voteInvalidated(x)
        invalidation.seq = vote
        castVote.seq = vote + 1
        let tampered = Self.chunk(records.dropLast(2) + [RecordCodec.encode(invalidation), RecordCodec.encode(castVote)], first: 1)
        let follower = try Self.follower(dirs.follower)
        defer { follower.close() }
        let refused = #expect(throws: LedgerError.self) {
            try follower.replicate(tampered, from: Ledger.Primary(ledgerID: primary.ledgerID), recordByRecord: recordByRecord)
        }
        guard case .unverifiedRecord(let seq, let reason)? = refused else { Issue.record("\(String(describing: refused))"); return }
        #expect(seq == vote, "\(seq): \(reason)")
    }

    /// A follower that holds events of one ledger takes nothing of another.
    @Test func aFollowerOfOneLedgerRefusesAnother() throws {
        let primary = try Primary("v3-2026-12-06-notes")
        let other = try Primary("v2-2026-12-07-signed-jury")
        let dir = TemporaryDirectory("follower")
        let ledger = try Self.follower(dir)
        defer { ledger.close() }
        _ = try ledger.replicate(try primary.chunk(from: 1, count: 5), from: Ledger.Primary(ledgerID: primary.ledgerID))
        let refused = #expect(throws: LedgerError.self) {
            try ledger.replicate(try other.chunk(from: 6, count: 5), from: Ledger.Primary(ledgerID: other.ledgerID))
        }
        #expect("\(String(describing: refused))".contains("it follows another ledger"))
        #expect(ledger.size == 5)
    }

    /// The wire form: what `append` writes, `init(first:count:wire:)` reads back; a length that
    /// runs past the end, or bytes left over, are refused.
    @Test func aChunkReadsBackAndRefusesBadLengths() throws {
        var chunk = RecordChunk(first: 10)
        for n in [1, 300, 70_000] { [UInt8](repeating: UInt8(n % 251), count: n).withUnsafeBytes { chunk.append($0) } }
        let read = try RecordChunk(first: 10, count: 3, wire: chunk.wire)
        #expect(read == chunk)
        #expect(read.withRecord(1) { Array($0) } == [UInt8](repeating: UInt8(300 % 251), count: 300))
        #expect(throws: RecordChunk.ChunkError.self) { try RecordChunk(first: 10, count: 4, wire: chunk.wire) }
        #expect(throws: RecordChunk.ChunkError.self) { try RecordChunk(first: 10, count: 2, wire: chunk.wire) }
        #expect(throws: RecordChunk.ChunkError.self) { try RecordChunk(first: 10, count: 1, wire: [0xFF, 0xFF, 0xFF, 0xFF, 1]) }
        #expect(throws: RecordChunk.ChunkError.self) { try RecordChunk(first: 10, count: 1, wire: [0, 0, 0, 0]) }
    }
}
