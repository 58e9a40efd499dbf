import Testing
import Foundation
import TestSupport
@testable import BallotLedger
@testable import BallotFormat
@testable import BallotAudit
@testable import BallotDomain

@Suite struct RecordCodecTests {
    let id = Fixtures.electionID
    let t = Fixtures.time("2022-11-02T12:00:00.25Z")

    var everyKind: [Event] {
        [
            .electionDefined(Fixtures.definition()),
            .nomineeAdded(election: id, nomination: Fixtures.nomination("raelingen")),
            .votingOpened(election: id),
            .votingClosed(election: id),
            .voteCast(VoteCast(election: id, nominee: Fixtures.slug("kinn"), voter: Fixtures.voter(7), castAt: t, channel: "sms")),
            .voteInvalidated(VoteInvalidation(election: id, vote: 12, nominee: Fixtures.slug("kinn"), castAt: t, reason: "bot — ugyldig")),
            .jurorAdded(election: id, juror: Fixtures.slug("jury-a"), name: "Åse Ødegård"),
            .juryScored(JuryScore(election: id, juror: Fixtures.slug("jury-a"), nominee: Fixtures.slug("kinn"), criterion: Fixtures.slug("results"), score: 9, supersedes: 40)),
            .juryScored(JuryScore(election: id, juror: Fixtures.slug("jury-a"), nominee: Fixtures.slug("kinn"), criterion: Fixtures.slug("results"), score: 9)),
            .juryClosed(election: id),
            .resultCertified(CertifiedResult(election: id, winner: Fixtures.slug("kinn"), ranking: Fixtures.nominees.map(Fixtures.slug))),
            .importRecorded(ImportRecord(file: "web-export.csv", election: id, bytes: 80_000, sha256: Digest32(hex: String(repeating: "ab", count: 32))!,
                                         rows: 1000, accepted: 990, alreadyPresent: 4,
                                         refused: [.init(reason: "duplicate_vote", count: 5), .init(reason: "bad_timestamp", count: 1)],
                                         firstSeq: 3, lastSeq: 1200)),
            .checkpointSigned(Checkpoint(size: 12, root: Digest32(hex: String(repeating: "cd", count: 32))!, takenAt: t, reason: .votingClosed,
                                         elections: [.init(election: id, tally: Fixtures.voter(1).digest, jury: Fixtures.voter(2).digest,
                                                           ranking: Fixtures.voter(3).digest)],
                                         publicKey: Fixtures.voter(4).digest, signature: Array(repeating: 0x5A, count: 64))),
            .checkpointSigned(Checkpoint(size: 13, root: Digest32(hex: String(repeating: "ce", count: 32))!, takenAt: t, reason: .interval,
                                         elections: [], origin: "example.org/kommuneprisen-2026",
                                         publicKey: Fixtures.voter(4).digest, signature: Array(repeating: 0x5B, count: 64))),
            // A definition that requires witnesses, under each rules version's layout.
            .electionDefined({ var d = Fixtures.definition(); d.witnessesRequired = true; return d }()),
            .electionDefined({ var d = Fixtures.definition(); d.rules = .v1; d.witnessesRequired = true; return d }()),
            // Jurors' signatures: a definition asking for them (with and without witnesses), a
            // juror with a key, a signed score, a proposal, a co-signature, a co-signed result.
            .electionDefined({ var d = Fixtures.definition(); d.jurySignatures = JurySignaturePolicy(required: true, quorum: 2); return d }()),
            .electionDefined({ var d = Fixtures.definition(); d.witnessesRequired = true; d.jurySignatures = JurySignaturePolicy(required: false, quorum: 1); return d }()),
            .jurorAdded(election: id, juror: Fixtures.slug("jury-b"), name: "Bjørn", key: Self.jurorKey),
            .juryScored(JuryScore(election: id, juror: Fixtures.slug("jury-b"), nominee: Fixtures.slug("kinn"), criterion: Fixtures.slug("results"),
                                  score: 7, supersedes: 41, signature: Array(repeating: 0x33, count: 64))),
            .resultProposed(ResultProposal(election: id, winner: Fixtures.slug("kinn"), ranking: Fixtures.nominees.map(Fixtures.slug),
                                           justification: "Kinn får prisen — for godt arbeid.")),
            .resultCosigned(ResultCosignature(election: id, proposal: 77, signature: JurorSignature(juror: Fixtures.slug("jury-b"), bytes: Array(repeating: 0x44, count: 64)))),
            .resultCertified(CertifiedResult(election: id, winner: Fixtures.slug("kinn"), ranking: Fixtures.nominees.map(Fixtures.slug),
                                             justification: "Kinn får prisen.",
                                             cosignatures: [JurorSignature(juror: Fixtures.slug("jury-b"), bytes: Array(repeating: 0x44, count: 64)),
                                                            JurorSignature(juror: Fixtures.slug("jury-c"), bytes: Array(repeating: 0x45, count: 64))],
                                             proposal: 77)),
            .resultCertified(CertifiedResult(election: id, winner: Fixtures.slug("kinn"), ranking: [Fixtures.slug("kinn")], justification: "Alone.")),
        ]
    }

    static var jurorKey: JurorKey {
        VerifierKey(name: "bjorn-2023", type: SignedNote.ed25519, publicKey: Fixtures.voter(9).digest).jurorKey
    }

    /// The record fuzz target's seeds (all but the crashes it found) are records this build
    /// decodes: a seed of an older layout would only feed the fuzzer refusals.
    @Test func theRecordFuzzSeedsDecode() throws {
        let dir = "\(Fixtures.repositoryRoot)/Tests/Fixtures/fuzz/record"
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) where !name.hasPrefix("crash-") {
            let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(name)")))
            let seq = bytes[2..<10].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            #expect(throws: Never.self, "\(name)") { _ = try bytes.withUnsafeBytes { try RecordCodec.decode($0, seq: seq) } }
        }
    }

    @Test func everyEventKindRoundTrips() throws {
        #expect(Set(everyKind.map(\.kind)) == Set(EventKind.allCases))
        for (i, event) in everyKind.enumerated() {
            let record = RecordedEvent(seq: UInt64(i + 1), timestamp: t, actor: Fixtures.juror, idempotencyKey: i % 2 == 0 ? "key-\(i)" : "", event: event)
            let bytes = RecordCodec.encode(record)
            let decoded = try bytes.withUnsafeBytes { try RecordCodec.decode($0, seq: UInt64(i + 1)) }
            #expect(decoded == record)
        }
    }

    /// Every count the format stores in 16 bits holds the most the rules let through: a
    /// checkpoint of `Limits.elections` elections, a definition of `Limits.criteria` criteria,
    /// a certified ranking of `Limits.nominees` nominees, each round-trips (the 65,536th
    /// election once trapped in the encoder on every checkpoint).
    @Test func theLargestCountsTheRulesAllowFitTheFormat() throws {
        #expect([Limits.elections, Limits.criteria, Limits.nominees].allSatisfy { $0 <= Int(UInt16.max) })
        let digests = Checkpoint.ElectionDigests(election: id, tally: Fixtures.voter(1).digest, jury: Fixtures.voter(2).digest, ranking: Fixtures.voter(3).digest)
        var definition = Fixtures.definition()
        definition.criteria = (0..<Limits.criteria).map { Criterion(id: Fixtures.slug("c\($0)"), title: "C", weight: Limits.criterionWeight) }
        let largest: [Event] = [
            .checkpointSigned(Checkpoint(size: 70_000, root: Fixtures.voter(4).digest, takenAt: t, reason: .interval,
                                         elections: Array(repeating: digests, count: Limits.elections),
                                         publicKey: Fixtures.voter(5).digest, signature: Array(repeating: 7, count: Checkpoint.signatureBytes))),
            .electionDefined(definition),
            .resultCertified(CertifiedResult(election: id, winner: Fixtures.slug("n0"), ranking: (0..<Limits.nominees).map { Fixtures.slug("n\($0)") })),
        ]
        for (i, event) in largest.enumerated() {
            let record = RecordedEvent(seq: UInt64(70_001 + i), timestamp: t, actor: Fixtures.admin, event: event)
            let bytes = RecordCodec.encode(record)
            #expect(try bytes.withUnsafeBytes { try RecordCodec.decode($0, seq: record.seq) } == record)
        }
    }

    func decode(_ bytes: [UInt8], seq: UInt64 = 5) -> LedgerError? {
        do {
            _ = try bytes.withUnsafeBytes { try RecordCodec.decode($0, seq: seq) }
            return nil
        } catch let error as LedgerError {
            return error
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    func vote() -> [UInt8] {
        RecordCodec.encode(RecordedEvent(seq: 5, timestamp: t, actor: Fixtures.importer, idempotencyKey: "v-5", event: everyKind[4]))
    }

    /// The audit's text codes: every text of 0 to 32 bytes, and texts that differ in one byte
    /// anywhere, get codes of their own; the same bytes again, the same code; each new text is
    /// handed over once, in code order; a longer text is not coded.
    @Test func textCodesTellEveryTextApart() throws {
        var codes = TextCodes()
        var texts: [String] = []
        var seen: [String: Int32] = [:]
        let base = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)
        var samples: [[UInt8]] = (0...32).map { Array(base.prefix($0)) }
        for n in [1, 7, 8, 9, 15, 16, 17, 31, 32] {
            for at in 0..<n {
                var b = Array(base.prefix(n))
                b[at] = UInt8(ascii: "_")
                samples.append(b)
            }
        }
        // Round 0: little around the text (a short one read in pieces, or shifted from the
        // bytes before it); 1: a word after it (one masked load); 2: a word before it and
        // nothing after (one shifted load). A code must not depend on what surrounds the text.
        for round in 0..<3 {
            for sample in samples {
                let before = round == 2 ? [UInt8](repeating: 0x5A, count: 8) : []
                var bytes: [UInt8] = before + [UInt8(sample.count >> 8), UInt8(sample.count & 0xFF)] + sample
                bytes += Array(repeating: UInt8(0xA5 ^ round), count: [3, 8, 0][round])
                let code = try bytes.withUnsafeBytes { raw in
                    var r = ByteReader(raw, offset: before.count)
                    return try codes.code(try r.text("text"), identifier: false)
                }
                texts += codes.takeNew()
                let text = String(decoding: sample, as: UTF8.self)
                let c = try #require(code)
                #expect(texts[Int(c)] == text, "round \(round): '\(text)'")
                if let earlier = seen[text] { #expect(earlier == c) } else { seen[text] = c }
            }
        }
        #expect(Set(seen.values).count == seen.count && texts.count == seen.count)
        let long = [UInt8(0), 33] + Array(repeating: UInt8(ascii: "a"), count: 33)
        #expect(try long.withUnsafeBytes { raw in var r = ByteReader(raw); return try codes.code(try r.text("text"), identifier: false) } == nil)
    }

    /// What the audit's vote decoder makes of `bytes` (stored as event `seq`), against what full
    /// decoding makes of them: the same refusal, the same vote, or nothing (a record that is not
    /// a vote, or whose texts are not coded, which the audit then decodes in full).
    func expectCodedAgrees(_ bytes: [UInt8], seq: UInt64, codes: TextCodes, texts: [String], _ what: String) {
        var codes = codes
        let full = Result { try bytes.withUnsafeBytes { try RecordCodec.decode($0, seq: seq) } }
        let coded = Result { try bytes.withUnsafeBytes { try CodedVote.decode($0, seq: seq, codes: &codes, keySeed: 11) } }
        switch (full, coded) {
        case (_, .success(nil)):
            return  // not coded: the audit decodes it in full
        case (.failure(let f), .failure(let c)):
            #expect("\(f)" == "\(c)", "\(what)")
        case (.success(let record), .success(let vote)):
            guard case .voteCast(let v) = record.event else {
                #expect(vote == nil, "\(what): not a vote, yet coded")
                return
            }
            guard let vote else { return }
            let all = texts + codes.takeNew()
            var key = record.idempotencyKey
            let keyHash = key.withUTF8 { KeyHash.hash(UnsafeRawBufferPointer($0), seed: 11) }
            #expect(all[Int(vote.election)] == v.election.value && all[Int(vote.nominee)] == v.nominee.value
                    && vote.channelBytes == v.channel.utf8.count && vote.voter == v.voter.digest.prefix && vote.castAt == v.castAt
                    && vote.timestamp == record.timestamp && vote.seq == seq && vote.keyHash == (key.isEmpty ? nil : keyHash), "\(what)")
        default:
            #expect(Bool(false), "\(what): full decoding gives \(full), the audit's \(coded)")
        }
    }

    /// Votes with idempotency keys and texts of every length around the word sizes: read at
    /// their offsets (texts met before) or field by field (texts new), each says what full
    /// decoding says. Then every byte of one such vote spoilt in turn, and every cut: the
    /// audit refuses what full decoding refuses, for the same reason, and codes nothing else.
    @Test func theAuditsVoteDecoderAgreesWithFullDecoding() throws {
        let lengths = [1, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33]
        func slug(_ n: Int, _ c: Character) -> NomineeID { Fixtures.slug("a" + String(repeating: c, count: n - 1)) }
        var codes = TextCodes()
        var texts: [String] = []
        var last: [UInt8] = []
        for keyLength in 0...40 {
            for (i, n) in lengths.enumerated() {
                let vote = VoteCast(election: slug(n, "e"), nominee: slug(lengths[(i + keyLength) % lengths.count], "n"),
                                    voter: Fixtures.voter(keyLength * 100 + i), castAt: t,
                                    channel: String(repeating: "c", count: lengths[(i + 3) % lengths.count] - 1))
                let key = String((0..<keyLength).map { Character(UnicodeScalar(UInt8(48 + ($0 * 7 + i) % 75))) })
                let bytes = RecordCodec.encode(RecordedEvent(seq: 9, timestamp: t, actor: Fixtures.importer, idempotencyKey: key, event: .voteCast(vote)))
                for round in ["new texts", "texts met before"] {
                    expectCodedAgrees(bytes, seq: 9, codes: codes, texts: texts, "key of \(keyLength), election of \(n), \(round)")
                    _ = try bytes.withUnsafeBytes { try CodedVote.decode($0, seq: 9, codes: &codes, keySeed: 11) }
                    texts += codes.takeNew()
                }
                // Once its texts are coded, such a vote is read at its offsets (unless a text is too long to code).
                let common = bytes.withUnsafeBytes { CodedVote.common($0, seq: 9, codes: &codes, keySeed: 11) }
                #expect((common != nil) == (keyLength <= 32 && n <= 32 && lengths[(i + keyLength) % lengths.count] <= 32),
                        "key of \(keyLength), election of \(n)")
                last = bytes
            }
        }
        #expect(CodedVote.validRoles == Actor.Role.allCases.reduce(0) { $0 | 1 << UInt64($1.rawValue) })
        let vote = RecordCodec.encode(RecordedEvent(seq: 9, timestamp: t, actor: Fixtures.importer, idempotencyKey: "row-17",
                                                    event: .voteCast(VoteCast(election: id, nominee: Fixtures.slug("kinn"), voter: Fixtures.voter(3),
                                                                              castAt: t, channel: "web"))))
        for bytes in [vote, last] {
            _ = try bytes.withUnsafeBytes { try CodedVote.decode($0, seq: 9, codes: &codes, keySeed: 11) }
            texts += codes.takeNew()
            for at in bytes.indices {
                for value in Set([0, 1, 0x2D, 0x41, 0x7F, 0x80, 0xC3, 0xFF, bytes[at] ^ 1, bytes[at] &+ 1, bytes[at] &- 1]) {
                    var spoilt = bytes
                    spoilt[at] = UInt8(value)
                    expectCodedAgrees(spoilt, seq: 9, codes: codes, texts: texts, "byte \(at) set to \(value)")
                }
            }
            for cut in 0..<bytes.count { expectCodedAgrees(Array(bytes.prefix(cut)), seq: 9, codes: codes, texts: texts, "cut to \(cut) bytes") }
            expectCodedAgrees(bytes + [0], seq: 9, codes: codes, texts: texts, "a byte left over")
            expectCodedAgrees(bytes, seq: 10, codes: codes, texts: texts, "stored under another sequence number")
        }
    }

    @Test func damagedRecordsAreRefusedWithTheirSequenceNumber() {
        var wrongVersion = vote()
        wrongVersion[0] = 2
        #expect("\(decode(wrongVersion)!)".contains("format version 2"))

        var unknownType = vote()
        unknownType[1] = 99
        #expect("\(decode(unknownType)!)".contains("unknown event type 99"))

        #expect("\(decode(vote(), seq: 6)!)".contains("says sequence number 5 but is stored under 6"))

        let truncated = Array(vote().dropLast(3))
        guard case .corruptRecord(let seq, _)? = decode(truncated) else { Issue.record("truncation not caught"); return }
        #expect(seq == 5)

        // A definition's witnesses_required is written only when true: a 0 there is damage.
        let defined = RecordCodec.encode(RecordedEvent(seq: 1, timestamp: t, actor: Fixtures.admin, idempotencyKey: "", event: .electionDefined(Fixtures.definition())))
        var falseFlag = defined + [0]
        falseFlag[25 + 3] += 1   // the payload length's last byte (after an empty key): one byte more
        #expect("\(decode(falseFlag, seq: 1).map { "\($0)" } ?? "accepted")".contains("witnesses required is written only when true"))

        let padded = "\(decode(vote() + [0])!)"
        #expect(padded.contains("payload length says") && padded.contains("follow"))

        var badUTF8 = vote()
        let channelAt = badUTF8.count - 3   // "sms" is the last field
        badUTF8[channelAt] = 0xFF
        #expect("\(decode(badUTF8)!)".contains("channel is not valid UTF-8"))
    }

    /// Decodes a record the ledger stored, by the offsets docs/ledger-format.md gives, without
    /// the decoder: the document is the specification, and this keeps the two in step.
    @Test func theFormatDocumentDescribesTheStoredBytes() throws {
        let dir = TemporaryDirectory()
        let ledger = try Fixtures.ledgerWithElection(in: dir)
        let outcome = try ledger.submit(Submission(.castVote(election: id, nominee: Fixtures.slug("kinn"), voter: Fixtures.voter(1),
                                                             castAt: Fixtures.time("2022-11-03T08:15:00Z"), channel: "web"),
                                                   by: Fixtures.importer, idempotencyKey: "row-17"))
        let receipt = try #require(outcome.receipt)
        let bytes = try #require(try ledger.reader.rawRecord(receipt.seq))

        let doc = try String(contentsOfFile: "\(Fixtures.repositoryRoot)/docs/ledger-format.md", encoding: .utf8)
        #expect(doc.contains("| 0 | 1 | format version"))
        #expect(doc.contains("| 29+K | P | payload"))

        func be<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T {
            bytes[at..<(at + MemoryLayout<T>.size)].reduce(T(0)) { $0 << 8 | T($1) }
        }
        #expect(bytes[0] == 1)                                   // format version
        #expect(bytes[1] == 5)                                   // event type: vote.cast
        #expect(be(2, UInt64.self) == receipt.seq)               // sequence
        #expect(be(10, Int64.self) == Fixtures.time(Fixtures.now).microseconds)   // timestamp
        #expect(bytes[18] == 3)                                  // role: importer
        #expect(be(19, UInt32.self) == 1001)                     // uid
        let k = Int(be(23, UInt16.self))
        #expect(String(decoding: bytes[25..<(25 + k)], as: UTF8.self) == "row-17")
        let p = Int(be(25 + k, UInt32.self))
        #expect(29 + k + p == bytes.count)
        // vote.cast payload: election, nominee, voter key (32), cast_at, channel.
        var at = 29 + k
        func str() -> String {
            let n = Int(be(at, UInt16.self))
            defer { at += 2 + n }
            return String(decoding: bytes[(at + 2)..<(at + 2 + n)], as: UTF8.self)
        }
        #expect(str() == id.value)
        #expect(str() == "kinn")
        #expect(Data(bytes[at..<(at + 32)]) == Fixtures.voter(1).withBytes { Data($0) })
        at += 32
        #expect(be(at, Int64.self) == Fixtures.time("2022-11-03T08:15:00Z").microseconds)
        at += 8
        #expect(str() == "web")
        #expect(at == bytes.count)
        // The leaf hash is SHA-256(0x00 || record).
        #expect(bytes.withUnsafeBytes { MerkleHash.leaf($0) } == receipt.leafHash)
    }
}
