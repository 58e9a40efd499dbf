import Foundation
import NIOCore
import Testing
import PropertyBased
import TestSupport
import BallotConfig
import BallotDomain
@testable import BallotProtocol

/// The typed protocol both sides share (issue 21, item 3): what a client encodes, the daemon
/// decodes to the same op; what the daemon writes, a client reads back to the same value.
@Suite struct TypedProtocolTests {
    static let runs = Int(ProcessInfo.processInfo.environment["BALLOT_PROPERTY_RUNS"] ?? "") ?? 500

    /// Text that JSON must escape, or that is not ASCII.
    static let texts = ["", "Kinn", "Bodø", "quote \" and \\ backslash", "tab\tnew\nline", "\u{1}\u{1F}", "🗳️ ✓", "a/b"]
    static let slugs: [Slug] = ["imdi-2022", "kinn", "jury-a", "results", "a", "x.y_z-0", Fixtures.slug(String(repeating: "z", count: 64))]
    static let numbers: [UInt64] = [1, 2, 7, 1000, 65_535, 1 << 32, UInt64(Int64.max)]

    /// An op drawn from numbers: `kind` picks the case, the rest fill it in.
    static func op(_ kind: Int, _ a: Int, _ b: Int, _ c: Int) -> Op {
        let text = texts[a % texts.count], slug = slugs[b % slugs.count], other = slugs[c % slugs.count]
        let n = numbers[c % numbers.count], maybe: UInt64? = a % 3 == 0 ? nil : numbers[a % numbers.count]
        let signature = SentSignature(keyID: UInt32(truncatingIfNeeded: a &* 2_654_435_761), bytes: (0..<64).map { UInt8(truncatingIfNeeded: $0 &* b &+ c) })
        switch kind {
        case 0: return .hello
        case 1: return .status
        case 2: return .electionDefine(ElectionSpec.fixture(a % 2 == 0 ? "imdi-2022" : "imdi-2023"))
        case 3: return .electionGet(slug)
        case 21: return .electionOpen(slug)
        case 22: return .electionClose(slug)
        case 23: return .juryClose(slug)
        case 24: return .jury(slug)
        case 25: return .tally(slug)
        case 26: return .ranking(slug)
        case 4: return .nomineeAdd(slug, Nomination(id: other, name: text, goalAttainmentDirect: Double(a) / 3, goalAttainmentAfterOneYear: Double(b) * 1e-5))
        case 5: return .voteCast(election: slug, nominee: other, voter: text, castAt: a % 2 == 0 ? nil : Timestamp(seconds: Int64(b) * 86_400 + 1_600_000_000),
                                 channel: texts[c % texts.count])
        case 6: return .voteInvalidate(election: slug, vote: n, reason: text)
        case 7: return .jurorAdd(election: slug, juror: other, name: text, key: a % 2 == 0 ? nil : "jury-a+01234567+AXYZ")
        case 8: return .juryScore(election: slug, juror: a % 2 == 0 ? nil : other, nominee: other, criterion: slug, score: Int32(b) - 30,
                                  signed: c % 2 == 0 ? nil : SignedScore(supersedes: maybe, signature: signature))
        case 9: return .resultCertify(slug, justification: text)
        case 10: return .resultSign(election: slug, juror: a % 2 == 0 ? nil : other, signature: signature)
        case 11: return .events(from: n, limit: 1 + a % 10_000)
        case 12: return .subscribe(from: n)
        case 13: return .replicate(from: n)
        case 14: return .checkpoint(latest: a % 2 == 0)
        case 15: return .inclusionProof(seq: n, size: maybe, checkpoint: maybe == nil && b % 2 == 1 ? n : nil)
        case 16: return .consistencyProof(oldSize: n - 1, newSize: maybe)
        case 17: return .receipt(seq: n, wait: a % 3601)
        case 18: return .backup(directory: "/var/backups/" + text.filter { $0 != "\0" })
        case 19: return .metrics
        case 20: return .importFile(ImportRequest(file: text.isEmpty ? "votes.csv" : text, size: n, format: [nil, "csv", "ndjson"][a % 3],
                                                  election: b % 2 == 0 ? nil : slug, dryRun: c % 2 == 0))
        default: preconditionFailure("kind \(kind) is drawn from 0...26")
        }
    }

    static let ops = zip(Gen.int(in: 0...26), Gen.int(in: 0...10_000), Gen.int(in: 0...63), Gen.int(in: 0...63)).map { op($0, $1, $2, $3) }

    @Test func whatAClientEncodesTheDaemonDecodesToTheSameOp() async throws {
        var names = Set<OpName>()
        await propertyCheck(count: Self.runs, input: Self.ops) { op in
            let line = op.requestLine(id: 7, idempotencyKey: "key-1")
            let request = try Request.parse(ByteBuffer(bytes: line.dropLast())).get()
            let decoded = try Op(request)
            #expect(decoded.name == op.name)
            #expect(request.op == op.name.rawValue)
            #expect(request.id == 7)
            #expect(try Fields(request).optionalString("idempotency_key") == "key-1")
            // The same op: it encodes to the same bytes.
            #expect(decoded.requestLine(id: 7, idempotencyKey: "key-1") == line, "\(String(decoding: line, as: UTF8.self))")
            names.insert(op.name)
        }
        // Every op the daemon knows was drawn (the generator has a case for each name).
        #expect(names.contains(.proof) && names.count == OpName.allCases.count, "\(Set(OpName.allCases).subtracting(names))")
    }

    @Test func anUnknownOpNamesEveryKnownOne() throws {
        let request = try Request.parse(ByteBuffer(string: #"{"op":"vote.launch"}"#)).get()
        #expect(throws: ProtocolError.self) { try Op(request) }
        do {
            _ = try Op(request)
        } catch {
            #expect(error.code == .unknownOp)
            for name in OpName.allCases { #expect(error.message.contains(name.rawValue)) }
        }
    }

    @Test func replyLinesReadBackAsWritten() throws {
        let lines: [ReplyLine] = [
            .ok(id: 1, result: ["seq": 3]),
            .ok(id: "text id", result: .null),
            .refused(id: .null, ProtocolError(.readOnly, "vote.cast: this daemon is a follower of unix:///p.sock")),
            .streamed(["id": 5, "progress": ["rows": 10]]),
            .streamed(["seq": 1, "type": "vote.cast"]),
        ]
        for line in lines {
            #expect(try ReplyLine(parsing: line.bytes.dropLast()) == line)
        }
        // A code from a newer daemon is kept in the message.
        let newer = try ReplyLine(parsing: Array(#"{"id":1,"ok":false,"error":{"code":"rate_limited","message":"slow down"}}"#.utf8))
        #expect(newer.errorCode == .internal)
        #expect(newer.refusal?.message == "rate_limited: slow down")
        #expect(throws: ProtocolError.self) { try ReplyLine(parsing: Array("not json".utf8)) }
        #expect(throws: ProtocolError.self) { try ReplyLine(parsing: Array(#"{"ok":false}"#.utf8)) }
    }

    @Test func everyResultReadsBackAsWritten() throws {
        let d = Digest32(hex: String(repeating: "ab", count: 32))!, e = Digest32(hex: String(repeating: "0f", count: 32))!
        let checkpoint: JSONValue = ["size": 9, "root": .string(d.hex), "note": "example.org/ledger\n9\n…\n"]
        func roundTrip<R: OpResult>(_ value: R) throws {
            #expect(try R(json: value.json) == value, "\(R.self)")
            // And through the bytes a client reads.
            #expect(try R(json: JSONParser.parse(value.json.text)) == value, "\(R.self)")
        }
        try roundTrip(HelloResult(protocolVersion: 1, serverVersion: "0.1.0", role: "admin", uid: 0, certificateSHA256: nil,
                                  ops: OpName.allCases.map(\.rawValue), checkpointPublicKey: d.hex))
        try roundTrip(HelloResult(protocolVersion: 1, serverVersion: "0.1.0", role: nil, uid: nil, certificateSHA256: e.hex, ops: ["hello"], checkpointPublicKey: nil))
        let follower = FollowerReport(primary: "tls://10.0.0.1:7443", state: "following", primaryLedgerSize: 10, lagEvents: 2, checkpointSize: 8,
                                      secondsSinceContact: 0.25, stoppedBecause: nil, lastError: "closed")
        try roundTrip(follower)
        for verification in [VerificationReport(mode: "full", state: .verified, events: 10, from: 1, through: 10, findings: 0),
                             VerificationReport(mode: "tail", state: .failed, events: 4, findings: 1, firstFinding: "event 3: leaf"),
                             VerificationReport(mode: "off", state: .off)] {
            try roundTrip(verification)
            try roundTrip(StatusResult(ledgerID: "00112233445566778899aabbccddeeff", ledgerSize: 10, merkleRoot: d, elections: 2,
                                       verification: verification, witnessing: .null, follower: follower))
        }
        try roundTrip(MetricsResult(text: "ballotd_events_total 3\n"))
        let receipt = WriteReceipt(seq: 4, leafHash: d, repeated: true)
        try roundTrip(receipt)
        try roundTrip(WriteReceipt(seq: 5, leafHash: e, repeated: false, witnessedCheckpointSeq: 6, witnessedNote: "note\n"))
        try roundTrip(DefineResult(events: [receipt, receipt]))
        try roundTrip(CheckpointTaken(seq: 9, leafHash: e, checkpoint: checkpoint))
        try roundTrip(LatestCheckpoint(seq: 9, checkpoint: checkpoint, ledgerSize: 12, merkleRoot: d))
        try roundTrip(LatestCheckpoint(seq: nil, checkpoint: nil, ledgerSize: 0, merkleRoot: d))
        try roundTrip(EventsResult(events: [["seq": 1, "type": "election.defined"]]))
        try roundTrip(InclusionProofResult(seq: 3, size: 9, leafHash: d, root: e, path: [d, e]))
        try roundTrip(InclusionProofResult(seq: 3, size: 9, leafHash: d, root: e, path: [], checkpointSeq: 10, checkpoint: checkpoint))
        try roundTrip(ConsistencyProofResult(oldSize: 0, newSize: 9, oldRoot: d, newRoot: e, path: [e]))
        try roundTrip(ReceiptResult(seq: 3, checkpointSize: 9, tlogProof: "c2sp.org/tlog-proof@v1\n"))
        try roundTrip(BackupResult(directory: "/b", ledgerSize: 9, merkleRoot: d, bytes: 4096))
        try roundTrip(SubscriptionStart(from: 1))
        try roundTrip(ImportGoAhead(send: 100, format: "csv", dryRun: false))
        try roundTrip(ImportSummary(file: "v.csv", election: "imdi-2022", dryRun: false, bytes: 100, rows: 3, accepted: 1, alreadyPresent: 1,
                                    refused: ["duplicate_vote": 1], firstSeq: 10, lastSeq: 10, sha256: d, importSeq: 11, leafHash: e))
        try roundTrip(ImportSummary(file: "v.csv", election: nil, dryRun: true, bytes: 0, rows: 0, accepted: 0, alreadyPresent: 0,
                                    refused: [:], firstSeq: 0, lastSeq: 0, sha256: d, importSeq: nil, leafHash: nil))
        try roundTrip(ImportRefusedRow(line: 2, voteID: "w2", reason: "bad_row", message: "column 'voter' is empty"))
        try roundTrip(ImportProgress(bytes: 10, size: 100, rows: 1, accepted: 1, alreadyPresent: 0, refused: 0))
        try roundTrip(ReplicationStart(from: 1, ledgerID: Array(0..<16), ledgerSize: 0, rootBefore: d))
        for line in [ImportLine.refused(ImportRefusedRow(line: 2, voteID: "", reason: "r", message: "m")),
                     .progress(ImportProgress(bytes: 1, size: 2, rows: 3, accepted: 4, alreadyPresent: 5, refused: 6))] {
            guard case .streamed(let value) = try ReplyLine(parsing: line.bytes(id: 1).dropLast()) else { Issue.record("not streamed"); continue }
            #expect(try ImportLine(value) == line)
        }
    }

    @Test func aResultOfTheWrongFormNamesTheMemberThatIsWrong() {
        let status: JSONValue = ["ledger_id": "x", "ledger_size": -1, "merkle_root": "00", "elections": 0]
        do {
            _ = try StatusResult(json: status)
            Issue.record("a negative ledger size was read")
        } catch {
            #expect(error.message.contains("status") && error.message.contains("'ledger_size'"), "\(error)")
        }
        #expect(throws: ProtocolError.self) { try WriteReceipt(json: ["seq": 1, "leaf_hash": "not hex", "repeated": false]) }
        #expect(throws: ProtocolError.self) { try HelloResult(json: "hello") }
    }
}
