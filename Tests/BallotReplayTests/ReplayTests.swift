import Testing
import Foundation
import TestSupport
import BallotStore
@testable import BallotLedger
@testable import BallotFormat
@testable import BallotAudit
@testable import BallotDomain

/// A real ledger written through `Ledger` (votes, jury, two signed checkpoints), then read by
/// the real `ballot-replay` binary; tampering is done on the LMDB environment underneath.
struct AuditedLedger {
    let dir = TemporaryDirectory("replay")
    let key = try! CheckpointKey(seed: Array(repeating: 9, count: 32))
    var path: String { dir.sub("ledger") }
    var pubkeyFile: String { dir.sub("checkpoint.pub") }
    /// Sequence numbers of the first checkpoint, a vote before it, and the second checkpoint.
    var firstCheckpoint: UInt64 = 0
    var secondCheckpoint: UInt64 = 0
    var voteSeq: UInt64 = 0
    var voteLeaf = MerkleHash.emptyRoot
    /// The tally document as the daemon stored it at the first checkpoint.
    var tallyAtFirst: [UInt8] = []

    init() throws {
        let id = Fixtures.electionID
        let ledger = try Ledger(path: path, options: Fixtures.options(), clock: ManualClock(Fixtures.now), checkpointKey: key)
        _ = try ledger.submit(Fixtures.setUpCommands().map { Submission($0, by: Fixtures.admin) })
        let votes = try ledger.submit(Fixtures.votes(0..<60).enumerated().map { i, vote in
            Submission(vote, by: Fixtures.importer, idempotencyKey: "row-\(i)")
        })
        voteSeq = votes[20].receipt!.seq
        voteLeaf = votes[20].receipt!.leafHash
        firstCheckpoint = try ledger.submit(Submission(.takeCheckpoint(.request), by: Fixtures.admin)).receipt!.seq
        tallyAtFirst = try ledger.reader.projection(id, .tally)!
        _ = try ledger.submit(Fixtures.votes(60..<100).map { Submission($0, by: Fixtures.importer) })
        secondCheckpoint = try ledger.submit(Submission(.closeVoting(election: id), by: Fixtures.admin)).receipt!.seq + 1
        _ = try ledger.submit(Fixtures.jurors.flatMap { j in Fixtures.nominees.flatMap { n in Fixtures.criteria.map { c in
            Submission(.scoreJury(election: id, juror: Fixtures.slug(j), nominee: Fixtures.slug(n), criterion: Fixtures.slug(c), score: Int32(5 + n.count % 4)), by: Fixtures.admin)
        } } })
        ledger.close()
        try "\(key.publicKey.hex)\n".write(toFile: pubkeyFile, atomically: true, encoding: .utf8)
    }

    func replay(_ arguments: String...) throws -> (status: Int32, stdout: String, stderr: String) {
        try runTool("ballot-replay", arguments)
    }

    /// `verify --json`, parsed.
    func verify(_ extra: [String] = []) throws -> (status: Int32, verdict: [String: Any]) {
        let r = try runTool("ballot-replay", ["verify", "--ledger", path, "--json"] + extra)
        let verdict = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
        return (r.status, verdict)
    }

    /// Changes the stored environment directly, as an attacker with the files would.
    func tamper(_ database: String = LedgerKeys.events, _ change: (borrowing WriteTransaction, Database) throws -> Void) throws {
        let env = try Environment(path: path, options: EnvironmentOptions(mapSize: 16 << 20))
        defer { env.close() }
        let db = try env.openDatabase(database, create: false)
        try env.write { txn in try change(txn, db) }
    }

    func record(_ seq: UInt64) throws -> [UInt8] {
        let env = try Environment(path: path, options: EnvironmentOptions(mapSize: 16 << 20, readOnly: true))
        defer { env.close() }
        let db = try env.openDatabase(LedgerKeys.events, create: false)
        return try env.read { txn in try txn.value(forKey: LedgerKeys.sequence(seq), in: db) }!
    }
}

@Suite(.serialized) struct ReplayTests {
    @Test func anIntactLedgerVerifiesAndAWrongKeyDoesNot() throws {
        let l = try AuditedLedger()
        let text = try l.replay("verify", "--ledger", l.path, "--pubkey", l.pubkeyFile)
        #expect(text.status == 0)
        #expect(text.stdout.contains("VERIFIED") && text.stdout.contains("2 found, 2 hold"))
        let (status, verdict) = try l.verify()
        #expect(status == 0 && verdict["verdict"] as? String == "verified")

        let other = l.dir.sub("other.pub")
        try "\(CheckpointKey().publicKey.hex)\n".write(toFile: other, atomically: true, encoding: .utf8)
        let (wrong, refused) = try l.verify(["--pubkey", other])
        #expect(wrong == 2 && refused["first_bad_seq"] as? Int == Int(l.firstCheckpoint))
    }

    /// Anyone who rewrites a ledger can re-sign it with a key of their own (issue 18, defect 8).
    /// Unpinned, a pass says it proves integrity, not authorship, and a checkpoint signed by
    /// another key than the first one's is a finding; pinned, that checkpoint fails. The Python
    /// verifier says and does the same.
    @Test func aSecondSigningKeyIsAFindingAndAnUnpinnedPassClaimsIntegrityOnly() throws {
        let l = try AuditedLedger()
        func python(_ extra: [String]) throws -> (status: Int32, stdout: String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["python3", "\(Fixtures.repositoryRoot)/scripts/verify-ledger.py", l.path] + extra
            let out = Pipe()
            p.standardOutput = out
            try p.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return (p.terminationStatus, String(decoding: data, as: UTF8.self))
        }
        let unpinned = try l.replay("verify", "--ledger", l.path)
        #expect(unpinned.status == 0)
        #expect(unpinned.stdout.contains("VERIFIED") && unpinned.stdout.contains("proves integrity, not authorship"), "\(unpinned.stdout)")
        #expect(!(try l.replay("verify", "--ledger", l.path, "--pubkey", l.pubkeyFile)).stdout.contains("not authorship"))
        #expect(try python([]).stdout.contains("proves integrity, not authorship"))
        #expect(try python(["--pubkey", l.pubkeyFile]).status == 0)

        // Another key signs a later checkpoint, as a forger's or a replaced key would.
        let forger = CheckpointKey()
        let ledger = try Ledger(path: l.path, options: Fixtures.options(), clock: ManualClock(Fixtures.now), checkpointKey: forger)
        _ = try ledger.submit(Fixtures.votes(100..<101).map { Submission($0, by: Fixtures.importer) })
        let third = try #require(try ledger.submit(Submission(.takeCheckpoint(.request), by: Fixtures.admin)).receipt?.seq)
        ledger.close()

        let (status, verdict) = try l.verify()
        #expect(status == 2 && verdict["first_bad_seq"] as? Int == Int(third))
        let what = (verdict["first_bad"] as? [String: Any])?["what"] as? String ?? ""
        #expect(what.contains("the signing key changed within the ledger") && what.contains(forger.publicKey.hex), "\(what)")
        let (pinned, refused) = try l.verify(["--pubkey", l.pubkeyFile])
        #expect(pinned == 2 && refused["first_bad_seq"] as? Int == Int(third))
        let py = try python(["--json"])
        #expect(py.status == 2 && py.stdout.contains("the signing key changed within the ledger"), "\(py.stdout)")
        #expect(try python(["--pubkey", l.pubkeyFile]).status == 2)
    }

    /// The audit reads the ledger in segments, each in a read snapshot of its own, however
    /// large and wherever the run starts: every record comes once, in order, with its own bytes.
    /// A vote decoded with its texts coded (`CodedVote`, which checks each distinct text once)
    /// says what decoding it in full says, and refuses what that refuses, with the same reason.
    @Test func segmentsCoverEveryRecordOnceAndCodedVotesAgree() throws {
        let ledger = try AuditedLedger()
        let reader = try LedgerReader.openReadOnly(path: ledger.path)
        var expected: [(seq: UInt64, bytes: [UInt8])] = []
        var voteTexts: Set<String> = [], voteCount = 0
        try reader.forEachRecord { record, bytes, _ in
            expected.append((record.seq, Array(bytes)))
            if case .voteCast(let v) = record.event {
                voteTexts.formUnion([v.election.value, v.nominee.value])
                voteCount += 1
            }
            return true
        }
        #expect(voteCount >= 60 && voteTexts.count >= 3)
        let last = try reader.size()
        for (size, start) in [(1, 1), (8, 1), (16, 1), (1024, 1), (16, 5), (8, last), (8, last + 1)] {
            let layout = Audit.SegmentLayout(start: start, last: last, size: size)
            var seen: [UInt64] = []
            var codes = TextCodes()
            var texts: [String] = []
            var votes = 0
            for i in 0..<layout.count {
                try reader.readSegment(from: layout.first(i), to: layout.end(i)) { records, _ in
                    #expect(i == layout.count - 1 || records.count <= size, "segment \(i) of \(size) from \(start)")
                    for (seq, bytes) in records {
                        seen.append(seq)
                        #expect(Array(bytes) == expected[Int(seq - 1)].bytes, "segments of \(size) from \(start): event \(seq)")
                        let full = try RecordCodec.decode(bytes, seq: seq)
                        let coded = try CodedVote.decode(bytes, seq: seq, codes: &codes, keySeed: 7)
                        texts += codes.takeNew()
                        guard case .voteCast(let v) = full.event else {
                            #expect(coded == nil, "event \(seq)")
                            continue
                        }
                        votes += 1
                        let c = try #require(coded)
                        var key = full.idempotencyKey
                        let keyHash = key.withUTF8 { KeyHash.hash(UnsafeRawBufferPointer($0), seed: 7) }
                        #expect(texts[Int(c.election)] == v.election.value && texts[Int(c.nominee)] == v.nominee.value
                                && c.channelBytes == v.channel.utf8.count && c.voter == v.voter.digest.prefix && c.castAt == v.castAt
                                && c.timestamp == full.timestamp && c.seq == seq && c.keyHash == (key.isEmpty ? nil : keyHash))
                    }
                }
            }
            #expect(seen == expected.map(\.seq).filter { $0 >= start }, "segments of \(size) from \(start)")
            if start == 1 { #expect(votes == voteCount && Set(texts) == voteTexts && texts.count == voteTexts.count) }
        }

        // Spoilt copies of a vote: a nominee id that is not an identifier, a channel that is not
        // UTF-8, an idempotency key that is not UTF-8, a byte left over, and two of these. Each way of decoding
        // refuses each, for the same reason, whether its texts were met before or not.
        let vote = try ledger.record(ledger.voteSeq)
        let record = try vote.withUnsafeBytes { try RecordCodec.decode($0, seq: ledger.voteSeq) }
        guard case .voteCast(let v) = record.event else { Issue.record("not a vote"); return }
        let nomineeAt = 29 + record.idempotencyKey.utf8.count + 2 + v.election.value.utf8.count + 2
        let keyAt = 25, channelAt = vote.count - v.channel.utf8.count
        let spoilt: [[UInt8]] = [
            { var b = vote; b[nomineeAt] = UInt8(ascii: "A"); return b }(),
            { var b = vote; b[channelAt] = 0xFF; return b }(),
            { var b = vote; b[keyAt] = 0xC3; return b }(),
            vote + [0],
            { var b = vote; b[nomineeAt] = UInt8(ascii: "A"); return b + [0] }(),  // two faults: the first is named
        ]
        for (n, bytes) in spoilt.enumerated() {
            for warm in [false, true] {
                var codes = TextCodes()
                if warm { _ = try vote.withUnsafeBytes { try CodedVote.decode($0, seq: ledger.voteSeq, codes: &codes, keySeed: 7) } }
                let full = #expect(throws: LedgerError.self) { try bytes.withUnsafeBytes { try RecordCodec.decode($0, seq: ledger.voteSeq) } }
                let coded = #expect(throws: LedgerError.self) {
                    try bytes.withUnsafeBytes { try CodedVote.decode($0, seq: ledger.voteSeq, codes: &codes, keySeed: 7) }
                }
                #expect(full.map { "\($0)" } == coded.map { "\($0)" }, "spoilt copy \(n), texts met before: \(warm)")
            }
        }
    }

    @Test func aFlippedByteThatStillDecodesIsPlacedByTheMerkleNodes() throws {
        let l = try AuditedLedger()
        var bytes = try l.record(l.voteSeq)
        bytes[bytes.count - 20] ^= 0x01   // inside the voter key: still a valid vote
        try l.tamper { txn, db in try txn.put(LedgerKeys.sequence(l.voteSeq), bytes, in: db) }
        let (status, verdict) = try l.verify()
        #expect(status == 2)
        let first = try #require(verdict["first_bad"] as? [String: Any])
        let range = (first["first_seq"] as! Int)...(first["last_seq"] as! Int)
        #expect(range.contains(Int(l.voteSeq)) && range.count <= 16)
    }

    /// More findings than the limit in one batch: the Merkle node over an altered early record
    /// is noted after the batch's later records that no longer decode, and must still be kept
    /// (the earliest findings are, not the first noted).
    @Test func anEarlyAlterationIsKeptWhenLaterRecordsFillTheFindings() throws {
        let l = try AuditedLedger()
        var altered = try l.record(l.voteSeq)
        altered[altered.count - 20] ^= 0x01   // inside the voter key: still a valid vote
        let broken = (l.voteSeq + 20)..<(l.voteSeq + 60)
        let undecodable = try broken.map { seq -> [UInt8] in
            var bytes = try l.record(seq)
            bytes[1] = 99   // the event type
            return bytes
        }
        try l.tamper { txn, db in
            try txn.put(LedgerKeys.sequence(l.voteSeq), altered, in: db)
            for (seq, bytes) in zip(broken, undecodable) { try txn.put(LedgerKeys.sequence(seq), bytes, in: db) }
        }
        let (status, verdict) = try l.verify()
        #expect(status == 2)
        let findings = try #require(verdict["findings"] as? [[String: Any]])
        let spans = findings.map { ($0["first_seq"] as! Int)...($0["last_seq"] as! Int) }
        #expect(spans.contains { $0.contains(Int(l.voteSeq)) && $0.count <= 16 }, "findings: \(spans)")
        #expect(spans.contains { $0 == Int(broken.lowerBound)...Int(broken.lowerBound) })
    }

    /// A record rewritten to carry the idempotency key of an earlier one (its hashes no longer
    /// match either, but the repeat is named exactly, with the event that used the key first).
    @Test func anIdempotencyKeyUsedTwiceIsNamedWithTheFirstUse() throws {
        let l = try AuditedLedger()
        let later = l.voteSeq + 1
        let original = try l.record(later).withUnsafeBytes { try RecordCodec.decode($0, seq: later) }
        var forged = ByteWriter(capacity: 256)
        RecordCodec.encode(RecordedEvent(seq: later, timestamp: original.timestamp, actor: original.actor,
                                         idempotencyKey: "row-20", event: original.event), into: &forged)
        try l.tamper { txn, db in try txn.put(LedgerKeys.sequence(later), forged.bytes, in: db) }
        let (status, verdict) = try l.verify()
        #expect(status == 2 && verdict["first_bad_seq"] as? Int == Int(later))
        let text = try l.replay("verify", "--ledger", l.path)
        #expect(text.stdout.contains("idempotency key 'row-20' was already used by event \(l.voteSeq)"))
    }

    /// Well-formed votes that the rules refuse, forged in place of four recorded ones: a second
    /// vote by the same voter, a nominee and an election that do not exist, a cast_at before
    /// the window. Replay names each, with the rule's own reason (the unknown ones are replayed
    /// in full, the rest on the bulk path).
    @Test func votesTheRulesRefuseAreNamedWithTheRule() throws {
        let l = try AuditedLedger()
        let first = try l.record(l.voteSeq).withUnsafeBytes { try RecordCodec.decode($0, seq: l.voteSeq) }
        guard case .voteCast(let original) = first.event else { Issue.record("not a vote"); return }
        func forge(_ seq: UInt64, _ change: (inout VoteCast) -> Void) throws {
            let recorded = try l.record(seq).withUnsafeBytes { try RecordCodec.decode($0, seq: seq) }
            guard case .voteCast(var vote) = recorded.event else { Issue.record("event \(seq) is not a vote"); return }
            change(&vote)
            var w = ByteWriter(capacity: 256)
            RecordCodec.encode(RecordedEvent(seq: seq, timestamp: recorded.timestamp, actor: recorded.actor,
                                             idempotencyKey: recorded.idempotencyKey, event: .voteCast(vote)), into: &w)
            try l.tamper { txn, db in try txn.put(LedgerKeys.sequence(seq), w.bytes, in: db) }
        }
        try forge(l.voteSeq + 1) { $0.voter = original.voter }
        try forge(l.voteSeq + 2) { $0.nominee = Fixtures.slug("nobody") }
        try forge(l.voteSeq + 3) { $0.castAt = Timestamp(microseconds: Fixtures.definition(Fixtures.electionID).opensAt.microseconds - 1) }
        try forge(l.voteSeq + 4) { $0.election = Fixtures.slug("no-such-election") }
        let text = try l.replay("verify", "--ledger", l.path)
        #expect(text.status == 2)
        for (offset, reason) in [(1, "this voter has already voted"), (2, "'nobody' is not a nominee"),
                                 (3, "is outside the voting window"), (4, "there is no election 'no-such-election'")] {
            let seq = l.voteSeq + UInt64(offset)
            let line = text.stdout.split(separator: "\n").first { $0.contains("event \(seq): the rules refuse this vote.cast event: ") }
            #expect(line?.contains(reason) == true, "event \(seq), \(reason): \(text.stdout)")
        }
    }

    /// A nomination forged after votes (which the rules refuse, but replay still applies, as it
    /// applies every event) and a vote for it in a bucket that already has a row: named, with
    /// no crash.
    @Test func aLateNominationIsNamedAndItsVotesCounted() throws {
        let l = try AuditedLedger()
        let at = l.voteSeq + 5, next = l.voteSeq + 6
        let earlier = try l.record(l.voteSeq).withUnsafeBytes { try RecordCodec.decode($0, seq: l.voteSeq) }
        let vote = try l.record(next).withUnsafeBytes { try RecordCodec.decode($0, seq: next) }
        guard case .voteCast(let first) = earlier.event, case .voteCast(var v) = vote.event else { Issue.record("not votes"); return }
        let late = Nomination(id: Fixtures.slug("late"), name: "Late", goalAttainmentDirect: 90, goalAttainmentAfterOneYear: 90)
        v.nominee = late.id
        v.castAt = first.castAt  // a bucket whose row was made before the nomination
        for (seq, event) in [(at, Event.nomineeAdded(election: Fixtures.electionID, nomination: late)), (next, .voteCast(v))] {
            var w = ByteWriter(capacity: 256)
            RecordCodec.encode(RecordedEvent(seq: seq, timestamp: vote.timestamp, actor: vote.actor, event: event), into: &w)
            try l.tamper { txn, db in try txn.put(LedgerKeys.sequence(seq), w.bytes, in: db) }
        }
        let text = try l.replay("verify", "--ledger", l.path)
        #expect(text.status == 2, "\(text.stdout) \(text.stderr)")
        #expect(text.stdout.contains("event \(at): the rules refuse this nominee.added event: nominations for"), "\(text.stdout)")
    }

    /// A pass that stops at its limit of findings stops the tree short of the end: the stored
    /// nodes past it are not taken for events cut off the end, and the report says how far the
    /// root goes.
    @Test func anAuditStoppedAtItsLimitSaysHowFarItWent() throws {
        let l = try AuditedLedger()
        var bytes = try l.record(l.voteSeq)
        bytes[1] = 99
        try l.tamper { txn, db in try txn.put(LedgerKeys.sequence(l.voteSeq), bytes, in: db) }
        let report = try Audit.verify(try LedgerReader.openReadOnly(path: l.path), maxFindings: 1)
        #expect(report.stoppedEarly && report.exitCode == 2)
        #expect(!report.findings.contains { $0.what.contains("removed from the end") }, "\(report.findings)")
        #expect(report.rootCovers <= report.events)
        let whole = try Audit.verify(try LedgerReader.openReadOnly(path: l.path))
        #expect(!whole.stoppedEarly && whole.rootCovers == whole.events)
    }

    @Test func aRecordThatNoLongerDecodesIsNamedExactly() throws {
        let l = try AuditedLedger()
        var bytes = try l.record(l.voteSeq)
        bytes[1] = 99   // the event type
        try l.tamper { txn, db in try txn.put(LedgerKeys.sequence(l.voteSeq), bytes, in: db) }
        let (status, verdict) = try l.verify()
        #expect(status == 2 && verdict["first_bad_seq"] as? Int == Int(l.voteSeq))
    }

    /// A key that is not 8 bytes in 'events' throws, naming the event it follows, once every
    /// record before it has been read, however the ledger is cut into segments (a snapshot that
    /// ended on the event before it once skipped it), and so does an audit.
    @Test func aKeyThatIsNotEightBytesEndsTheScanWhereItIs() throws {
        let ledger = try AuditedLedger()
        let k = ledger.voteSeq
        try ledger.tamper { txn, db in try txn.put(LedgerKeys.sequence(k) + [0], [1, 2, 3], in: db) }
        let reader = try LedgerReader.openReadOnly(path: ledger.path)
        func failure(_ scan: () throws -> Void) -> String? {
            do { try scan() } catch { return "\(error)" }
            return nil
        }
        for size in [1, 4, 16, 1024] {
            let layout = Audit.SegmentLayout(start: 1, last: try reader.size(), size: size)
            var seen: [UInt64] = []
            var error: String?
            for i in 0..<layout.count where error == nil {
                error = failure { try reader.readSegment(from: layout.first(i), to: layout.end(i)) { records, _ in seen += records.map(\.seq) } }
            }
            #expect(seen == Array(1...k), "segments of \(size)")
            #expect(error?.contains("a key of 9 bytes follows event \(k)") == true, "segments of \(size): \(error ?? "no error")")
            for helpers in [0, 1] {
                let audit = failure { _ = try Audit.verify(reader, segment: size, helpers: helpers) }
                #expect(audit?.contains("a key of 9 bytes follows event \(k)") == true, "segments of \(size): \(audit ?? "no error")")
            }
        }
        var one: [UInt64] = []
        let error = failure { try reader.scan { seq, _, _ in one.append(seq); return true } }
        #expect(one == Array(1...k) && error?.contains("a key of 9 bytes follows event \(k)") == true)
    }

    /// Keys that sort before event 1's, a short one or a record under sequence number 0, are
    /// met by the first segment and named, however the ledger is cut.
    @Test func keysBeforeEventOneAreMet() throws {
        for (key, says) in [([UInt8(0)], "a key of 1 bytes comes before event 1"),
                            (LedgerKeys.sequence(0), "a record is stored under sequence number 0")] {
            let l = try AuditedLedger()
            let first = try l.record(1)
            try l.tamper { txn, db in try txn.put(key, first, in: db) }
            let reader = try LedgerReader.openReadOnly(path: l.path)
            for (segment, helpers) in [(1024, 1), (4, 0), (1, 2)] {
                do {
                    let report = try Audit.verify(reader, segment: segment, helpers: helpers)
                    Issue.record("verified despite the key \(key): \(report.findings)")
                } catch {
                    #expect("\(error)".contains(says), "segments of \(segment): \(error)")
                }
            }
        }
    }

    /// However the ledger is cut into segments, and however many threads check them, an audit
    /// says the same: intact, and tampered in each of the ways above (in a segment's middle, on
    /// its boundary, across several).
    @Test func theVerdictIsTheSameHoweverTheLedgerIsCut() throws {
        func flip(_ l: AuditedLedger, _ seq: UInt64, at offset: (Int) -> Int, _ change: (inout UInt8) -> Void) throws {
            var bytes = try l.record(seq)
            change(&bytes[offset(bytes.count)])
            try l.tamper { txn, db in try txn.put(LedgerKeys.sequence(seq), bytes, in: db) }
        }
        let tamperings: [(String, says: String, (AuditedLedger) throws -> Void)] = [
            ("intact", says: "VERIFIED", { _ in }),
            ("a voter key flipped", says: "they do not hash to their stored Merkle node", { l in try flip(l, l.voteSeq, at: { $0 - 20 }) { $0 ^= 1 } }),
            ("a record that no longer decodes", says: "unknown event type 99", { l in try flip(l, l.voteSeq + 11, at: { _ in 1 }) { $0 = 99 } }),
            ("a deleted record", says: "is missing: the next stored event is", { l in try l.tamper { txn, db in _ = try txn.delete(LedgerKeys.sequence(l.voteSeq), in: db) } }),
            ("twenty deleted records", says: "is missing: the next stored event is", { l in try l.tamper { txn, db in
                for seq in l.voteSeq..<(l.voteSeq + 20) { _ = try txn.delete(LedgerKeys.sequence(seq), in: db) }
            } }),
            ("the last record deleted", says: "tally differs from the replay", { l in
                // (Read before the tampering opens its environment: LMDB must not have one open
                // twice in a process, and the second open reset the lock file under the first.)
                let last = try LedgerReader.openReadOnly(path: l.path).size()
                try l.tamper { txn, db in _ = try txn.delete(LedgerKeys.sequence(last), in: db) }
            }),
            ("two records swapped", says: "the record says sequence number", { l in
                let a = try l.record(l.voteSeq), b = try l.record(l.voteSeq + 9)
                try l.tamper { txn, db in
                    try txn.put(LedgerKeys.sequence(l.voteSeq), b, in: db)
                    try txn.put(LedgerKeys.sequence(l.voteSeq + 9), a, in: db)
                }
            }),
            ("an idempotency key used twice", says: "idempotency key 'row-3' was already used by event 1", { l in
                for seq in [l.voteSeq + 1, l.voteSeq + 30] {
                    let original = try l.record(seq).withUnsafeBytes { try RecordCodec.decode($0, seq: seq) }
                    var forged = ByteWriter(capacity: 256)
                    RecordCodec.encode(RecordedEvent(seq: seq, timestamp: original.timestamp, actor: original.actor,
                                                     idempotencyKey: "row-3", event: original.event), into: &forged)
                    try l.tamper { txn, db in try txn.put(LedgerKeys.sequence(seq), forged.bytes, in: db) }
                }
            }),
            ("a forged checkpoint signature", says: "signature", { l in try flip(l, l.secondCheckpoint, at: { $0 - 1 }) { $0 ^= 0x80 } }),
            ("a Merkle node altered", says: "level 5", { l in try l.tamper(LedgerKeys.merkle) { txn, db in
                try txn.put(LedgerKeys.merkleNode(level: 5, index: 2), Array(repeating: 7, count: 32), in: db)
            } }),
            ("a Merkle node deleted, another cut short", says: "level 5) is not 32 bytes", { l in try l.tamper(LedgerKeys.merkle) { txn, db in
                _ = try txn.delete(LedgerKeys.merkleNode(level: 4, index: 5), in: db)
                try txn.put(LedgerKeys.merkleNode(level: 5, index: 4), Array(repeating: 7, count: 31), in: db)
            } }),
            ("a projection edited", says: "tally differs from the replay", { l in try l.tamper(LedgerKeys.projections) { txn, db in
                try txn.put(LedgerKeys.projection(Fixtures.electionID, .tally), Array(#"{"valid_votes":1}"#.utf8), in: db)
            } }),
        ]
        for (name, says, tamper) in tamperings {
            let l = try AuditedLedger()
            try tamper(l)
            let reader = try LedgerReader.openReadOnly(path: l.path)
            func summary(_ r: AuditReport) -> String {
                let tally = r.state.elections.map { String(decoding: Tally($0).json.serialized(), as: UTF8.self) }
                return "\(r.exitCode) \(r.events) \(r.root.hex) \(r.rootCovers) \(r.stoppedEarly) \(r.checkpoints.map { "\($0.seq):\($0.holds)" }) "
                    + r.findings.map(\.description).joined(separator: " | ") + " \(tally)"
            }
            let report = try Audit.verify(reader, segment: 1 << 20, helpers: 0)
            let whole = summary(report)
            #expect(name == "intact" ? whole.hasPrefix("0 ") : !whole.hasPrefix("0 "), "\(name): \(whole)")
            #expect(name == "intact" || whole.contains(says), "\(name): \(whole)")
            if name.hasPrefix("a Merkle node deleted") { #expect(whole.contains("level 4) is missing from"), "\(whole)") }
            for (segment, helpers) in [(1024, 1), (32, 0), (32, 1), (16, 2), (8, 1), (4, 1), (1, 1)] {
                let cut = summary(try Audit.verify(reader, segment: segment, helpers: helpers))
                #expect(cut == whole, "\(name), segments of \(segment), \(helpers) helpers:\n\(cut)\nwhole:\n\(whole)")
                // Stopped at a limit of one finding (between segments, so how far it got depends
                // on the cut), an audit still gives the same exit code, and says it stopped.
                let stopped = try Audit.verify(reader, maxFindings: 1, segment: segment, helpers: helpers)
                #expect(stopped.exitCode == report.exitCode && stopped.stoppedEarly == !report.findings.isEmpty,
                        "\(name), segments of \(segment), stopped at one finding: \(stopped.findings)")
            }
        }
    }

    @Test func aDeletedRecordIsNamed() throws {
        let l = try AuditedLedger()
        try l.tamper { txn, db in _ = try txn.delete(LedgerKeys.sequence(l.voteSeq), in: db) }
        let (status, verdict) = try l.verify()
        #expect(status == 2 && verdict["first_bad_seq"] as? Int == Int(l.voteSeq))
    }

    @Test func twoSwappedRecordsAreNamed() throws {
        let l = try AuditedLedger()
        let a = try l.record(l.voteSeq), b = try l.record(l.voteSeq + 3)
        try l.tamper { txn, db in
            try txn.put(LedgerKeys.sequence(l.voteSeq), b, in: db)
            try txn.put(LedgerKeys.sequence(l.voteSeq + 3), a, in: db)
        }
        let (status, verdict) = try l.verify()
        #expect(status == 2 && verdict["first_bad_seq"] as? Int == Int(l.voteSeq))
    }

    @Test func aForgedCheckpointSignatureIsNamed() throws {
        let l = try AuditedLedger()
        var bytes = try l.record(l.secondCheckpoint)
        bytes[bytes.count - 1] ^= 0x80   // the signature's last byte
        try l.tamper { txn, db in try txn.put(LedgerKeys.sequence(l.secondCheckpoint), bytes, in: db) }
        let (status, verdict) = try l.verify()
        #expect(status == 2 && verdict["first_bad_seq"] as? Int == Int(l.secondCheckpoint))
        // (Named first: inside #expect, the `?? ""` made the macro drop what `contains` said.)
        let what = (verdict["first_bad"] as? [String: Any])?["what"] as? String ?? ""
        #expect(what.contains("signature"), "\(what)")
    }

    @Test func aProjectionEditedInPlaceDisagrees() throws {
        let l = try AuditedLedger()
        let key = LedgerKeys.projection(Fixtures.electionID, .tally)
        try l.tamper(LedgerKeys.projections) { txn, db in
            try txn.put(key, Array(#"{"election":"award-2022","valid_votes":1000000}"#.utf8), in: db)
        }
        let (status, verdict) = try l.verify()
        #expect(status == 1 && verdict["verdict"] as? String == "disagrees")
        let findings = verdict["findings"] as? [[String: Any]] ?? []
        #expect(findings.contains { ($0["what"] as? String ?? "").contains("stored 'award-2022' tally") })
    }

    @Test func theNumbersAsTheyStoodAtACheckpoint() throws {
        let l = try AuditedLedger()
        let size = l.firstCheckpoint - 1
        let tally = try l.replay("tally", "--ledger", l.path, "--election", Fixtures.electionID.value, "--until-seq", "\(size)", "--json")
        #expect(tally.status == 0)
        #expect(tally.stdout.trimmingCharacters(in: .newlines) == String(decoding: l.tallyAtFirst, as: UTF8.self))
        let ranking = try l.replay("ranking", "--ledger", l.path, "--election", Fixtures.electionID.value)
        #expect(ranking.status == 0 && ranking.stdout.contains("combined"))
        #expect(try l.replay("tally", "--ledger", l.path, "--election", "nope").status == 66)

        let diff = try l.replay("diff", "--ledger", l.path, "--from", "\(l.firstCheckpoint)", "--to", "\(l.secondCheckpoint)", "--pubkey", l.pubkeyFile)
        #expect(diff.status == 0 && diff.stdout.contains("extends the earlier one") && diff.stdout.contains("vote.cast: 40"))

        let receipt = try l.replay("receipt", "--ledger", l.path, "--seq", "\(l.voteSeq)", "--leaf-hash", l.voteLeaf.hex, "--pubkey", l.pubkeyFile)
        #expect(receipt.status == 0 && receipt.stdout.contains("receipt holds"))
        let forged = try l.replay("receipt", "--ledger", l.path, "--seq", "\(l.voteSeq)", "--leaf-hash", MerkleHash.emptyRoot.hex)
        #expect(forged.status == 2)

        let export = try l.replay("export", "--ledger", l.path, "--format", "ndjson")
        let lines = export.stdout.split(separator: "\n")
        #expect(export.status == 0 && lines.count == Int(l.secondCheckpoint) + 60)
        #expect(lines.contains { $0.contains("\"type\":\"checkpoint.noted\"") })
    }

    @Test func unreadableLedgersAreRefusedWithExitCode66() throws {
        let l = try AuditedLedger()
        #expect(try l.replay("verify", "--ledger", l.dir.sub("missing")).status == 66)
        let empty = l.dir.sub("empty")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        #expect(try l.replay("verify", "--ledger", empty).status == 66)
        let garbage = l.dir.sub("garbage")
        try FileManager.default.createDirectory(atPath: garbage, withIntermediateDirectories: true)
        try Data(repeating: 0x42, count: 20_000).write(to: URL(fileURLWithPath: "\(garbage)/data.mdb"))
        let notLMDB = try l.replay("verify", "--ledger", garbage)
        #expect(notLMDB.status == 66 && notLMDB.stderr.contains("cannot read the ledger"))

        let truncated = l.dir.sub("truncated")
        try FileManager.default.createDirectory(atPath: truncated, withIntermediateDirectories: true)
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(l.path)/data.mdb"))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: "\(truncated)/data.mdb"))
        let cut = try l.replay("verify", "--ledger", truncated)
        #expect(cut.status == 66 && cut.stderr.contains("truncated"))

        try l.tamper(LedgerKeys.meta) { txn, db in try txn.put(Array("format".utf8), [2], in: db) }
        let newer = try l.replay("verify", "--ledger", l.path)
        #expect(newer.status == 66 && newer.stderr.contains("format version 2"))
        #expect(try l.replay("verify").status == 64)
    }

    /// A ledger a writer keeps appending to while it is audited: each audit reads it as it
    /// stands when it ends (catching up on what came meanwhile) and finds nothing wrong, in
    /// particular no stored node past its end, however it is cut.
    @Test func aLedgerBeingAppendedToVerifiesWhileItGrows() throws {
        let l = try AuditedLedger()
        let writer = try Ledger(path: l.path, options: Fixtures.options(), clock: ManualClock(Fixtures.now), checkpointKey: l.key)
        defer { writer.close() }
        let live = Fixtures.slug("award-live")
        _ = try writer.submit(Fixtures.setUpCommands(live).map { Submission($0, by: Fixtures.admin) })
        let done = DispatchSemaphore(value: 0)
        // The writer is used by that thread alone until `done`.
        struct Writer: @unchecked Sendable { let ledger: Ledger }
        let appending = Writer(ledger: writer)
        Thread {
            for batch in 0..<60 {
                let votes = Fixtures.votes((batch * 40)..<(batch * 40 + 40), election: live, seed: 7)
                _ = try? appending.ledger.submit(votes.map { Submission($0, by: Fixtures.importer) })
            }
            done.signal()
        }.start()
        // The writer's own environment: a second one on the same files in this process would
        // reset LMDB's lock file under the writer (another process, as an auditor's is, may).
        let reader = writer.reader
        var audits = 0
        while done.wait(timeout: .now()) == .timedOut || audits < 2 {
            for (segment, helpers) in [(4, 1), (16, 2), (1024, 1)] {
                let report = try Audit.verify(reader, segment: segment, helpers: helpers)
                #expect(report.exitCode == 0 && report.rootCovers == report.events, "audit \(audits): \(report.findings)")
                audits += 1
            }
        }
        #expect(try Audit.verify(reader).events == writer.size)
    }

    @Test func aLedgerOpenForWritingIsReadAsItStands() throws {
        let l = try AuditedLedger()
        let writer = try Ledger(path: l.path, options: Fixtures.options(), clock: ManualClock(Fixtures.now), checkpointKey: l.key)
        defer { writer.close() }
        let (status, verdict) = try l.verify()
        #expect(status == 0 && verdict["events"] as? Int == Int(writer.size))
    }

    @Test func theIndependentPythonVerifierAgreesOnTheRoot() throws {
        let l = try AuditedLedger()
        let (_, verdict) = try l.verify()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "\(Fixtures.repositoryRoot)/scripts/verify-ledger.py", l.path, "--json"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let python = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        #expect(python["root"] as? String == verdict["merkle_root"] as? String)
        #expect((python["checkpoints"] as? [[String: Any]])?.allSatisfy { $0["signature_checked"] as? Bool == true } == true)
    }

    /// A page that cannot be written ends `report` with 73 and the reason, and leaves no file
    /// half written beside where it was to go.
    @Test func aReportThatCannotBeWrittenSaysWhy() throws {
        let l = try AuditedLedger()
        let missing = l.dir.sub("no-such-directory/report.html")
        let made = try l.replay("report", "--ledger", l.path, "--election", Fixtures.electionID.value, "--out", missing)
        #expect(made.status == 73)
        #expect(made.stderr.contains("cannot write \(missing): No such file or directory"))
        let page = l.dir.sub("report.html")
        #expect(try l.replay("report", "--ledger", l.path, "--election", Fixtures.electionID.value, "--out", page).status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: l.dir.path).filter { $0.hasPrefix("report.html.") }.isEmpty)
    }

    /// The page as a browser renders it: the probe runs inside Chromium after layout and reads
    /// what is on screen (the bars' drawn widths, the shaded window, the visible verdict).
    @Test func theReportRendersInChromium() throws {
        let l = try AuditedLedger()
        let page = l.dir.sub("report.html")
        let made = try l.replay("report", "--ledger", l.path, "--election", Fixtures.electionID.value, "--out", page, "--pubkey", l.pubkeyFile)
        #expect(made.status == 0)
        let seen = try probeInChromium(page, probe: """
            function () {
              const bars = [...document.querySelectorAll('#votes-chart rect.bar')].map(b => ({votes: +b.dataset.votes, width: b.getBBox().width}));
              const ratios = bars.filter(b => b.votes > 0).map(b => b.width / b.votes);
              const verdict = document.getElementById('verdict');
              return {
                verdict: verdict.innerText, verdictHeight: verdict.getBoundingClientRect().height,
                result: document.getElementById('result').innerText,
                bars: bars.length, votes: bars.reduce((a, b) => a + b.votes, 0),
                proportional: Math.max(...ratios) - Math.min(...ratios) <= 0.001 * Math.max(...ratios),
                windowWidth: document.querySelector('#time-chart rect.window').getBBox().width,
                buckets: document.querySelectorAll('#time-chart rect.bucket').length,
                rankingRows: document.querySelectorAll('#ranking tr[data-nominee]').length,
                juryRows: document.querySelectorAll('#jury tr').length - 1,
                formula: document.getElementById('formula').innerText,
                checkpoint: document.getElementById('checkpoint').innerText,
                externalResources: performance.getEntriesByType('resource').length
              };
            }
            """, directory: l.dir)
        #expect((seen["verdict"] as? String)?.hasPrefix("VERIFIED") == true)
        #expect((seen["verdictHeight"] as? Double ?? 0) > 0)
        #expect((seen["result"] as? String)?.contains("Not certified yet") == true)
        #expect(seen["bars"] as? Int == Fixtures.nominees.count && seen["votes"] as? Int == 100)
        #expect(seen["proportional"] as? Bool == true)
        #expect((seen["windowWidth"] as? Double ?? 0) > 100)
        #expect((seen["buckets"] as? Int ?? 0) > 0)
        #expect(seen["rankingRows"] as? Int == Fixtures.nominees.count && seen["juryRows"] as? Int == Fixtures.nominees.count)
        #expect((seen["formula"] as? String)?.contains("combined = 0.5 × vote_share") == true)
        #expect((seen["checkpoint"] as? String)?.contains("event \(l.secondCheckpoint)") == true)
        #expect(seen["externalResources"] as? Int == 0)
    }
}

/// A vote the audit's coded path cannot take (an election id over 32 bytes: decoded in full)
/// still has its idempotency key checked against every other vote's.
@Suite struct FullyDecodedVoteKeyTests {
    @Test func aRepeatedKeyOnVotesDecodedInFullIsAFinding() throws {
        let dir = TemporaryDirectory("long-ids")
        let long = Fixtures.slug("an-election-whose-id-is-longer-than-32-bytes")
        let ledger = try Ledger(path: dir.sub("ledger"), options: Fixtures.options(), clock: ManualClock(Fixtures.now))
        _ = try ledger.submit(Fixtures.setUpCommands(long).map { Submission($0, by: Fixtures.admin) })
        let votes = try ledger.submit(Fixtures.votes(0..<3, election: long).enumerated().map { i, vote in
            Submission(vote, by: Fixtures.importer, idempotencyKey: "row-\(i)")
        })
        let first = try #require(votes[0].receipt?.seq), third = try #require(votes[2].receipt?.seq)
        let original = try #require(try ledger.reader.record(third))
        ledger.close()
        #expect(try Audit.verify(LedgerReader.openReadOnly(path: dir.sub("ledger"))).findings.isEmpty)
        // The third vote takes the first one's key.
        let env = try Environment(path: dir.sub("ledger"), options: EnvironmentOptions(mapSize: 16 << 20))
        let db = try env.openDatabase(LedgerKeys.events, create: false)
        var forged = original
        forged.idempotencyKey = "row-0"
        try env.write { txn in try txn.put(LedgerKeys.sequence(third), RecordCodec.encode(forged), in: db) }
        env.close()
        let report = try Audit.verify(LedgerReader.openReadOnly(path: dir.sub("ledger")))
        #expect(report.findings.contains { $0.what.contains("idempotency key 'row-0' was already used by event \(first)") }, "\(report.findings)")
    }
}
