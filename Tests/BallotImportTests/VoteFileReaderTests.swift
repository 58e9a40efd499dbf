import Testing
import TestSupport
@testable import BallotImport
import BallotDomain
import BallotLedger
import BallotFormat
import BallotAudit

/// The reader on its own: every kind of bad input is a located refusal, and the valid rows
/// around it are still read. Chunk sizes vary so that rows split across chunks are covered.
@Suite struct VoteFileReaderTests {
    struct Read {
        var votes: [(line: Int, id: String, nominee: String)] = []
        var refused: [(line: Int, id: String, reason: String)] = []
        var election: ElectionID?
    }

    func read(_ text: String, _ format: VoteFileFormat = .csv, election: String? = nil, chunk: Int = 7,
              maxRowBytes: Int = 1024) throws -> Read {
        try read(Array(text.utf8), format, election: election, chunk: chunk, maxRowBytes: maxRowBytes)
    }

    func read(_ bytes: [UInt8], _ format: VoteFileFormat = .csv, election: String? = nil, chunk: Int = 7,
              maxRowBytes: Int = 1024) throws -> Read {
        var reader = VoteFileReader(format: format, election: election.map(Fixtures.slug), identity: VoterIdentity(hasher: Fixtures.hasher), definitions: { _ in nil },
                                    actor: Fixtures.importer, maxRowBytes: maxRowBytes)
        var result = Read()
        let collect: (VoteFileRow) -> Void = { row in
            switch row {
            case .vote(let line, let s):
                guard case .castVote(_, let nominee, _, _, _) = s.command else { return }
                result.votes.append((line, s.idempotencyKey, nominee.value))
            case .refused(let line, let id, let refusal):
                result.refused.append((line, id, refusal.reason))
            }
        }
        for start in stride(from: 0, to: bytes.count, by: chunk) {
            try bytes[start..<min(start + chunk, bytes.count)].withUnsafeBytes { try reader.feed($0, collect) }
        }
        try reader.finish(collect)
        result.election = reader.election
        return result
    }

    let header = "vote_id,election,voter,nominee,cast_at,channel\n"

    @Test(arguments: [1, 3, 7, 64, 4096]) func goodRowsInAnyChunking(chunk: Int) throws {
        let r = try read(header + "a,award-2022,x@y.no,kinn,2022-11-03T10:00:00Z,web\r\n\n\"b\",award-2022,\"Ola \"\"O\"\" N\",bodo,2022-11-03T10:00:00Z,sms\nc,award-2022,z@y.no,kinn,2022-11-03T10:00:00Z,", chunk: chunk)
        #expect(r.votes.map(\.id) == ["a", "b", "c"])
        #expect(r.votes.map(\.line) == [2, 4, 5])
        #expect(r.refused.isEmpty)
        #expect(r.election == Fixtures.slug("award-2022"))
    }

    @Test func aByteOrderMarkAndColumnsInAnyOrder() throws {
        let r = try read([0xEF, 0xBB, 0xBF] + Array("Cast_At,nominee,voter,vote_id\n2022-11-03T10:00:00Z,kinn,v,1\n".utf8), election: "award-2022")
        #expect(r.votes.map(\.id) == ["1"])
    }

    /// A quoted field cannot span lines: each line is refused on its own, and the next is read.
    @Test func aQuotedFieldCannotSpanLines() throws {
        let r = try read(header + "a,award-2022,\"two\nlines\",kinn,2022-11-03T10:00:00Z,web\nb,award-2022,v,bodo,2022-11-03T10:00:00Z,web\n")
        #expect(r.votes.map(\.line) == [4])
        #expect(r.refused.map(\.line) == [2, 3])
        #expect(r.refused.map(\.reason) == ["bad_csv", "bad_csv"])
    }

    /// The probe's file (issue 18, defect 2): a stray opening quote on line 3 once joined lines
    /// 3 to 6 into one refused row, and q2-b, q2-c and q2-d were neither imported nor reported.
    @Test(arguments: [1, 5, 4096]) func aStrayQuoteRefusesItsOwnLineOnly(chunk: Int) throws {
        let text = """
            vote_id,election,voter,nominee,cast_at,channel
            q2-a,award-2022,q2a@x.no,kinn,2022-11-05T12:00:00Z,web
            q2-bad,award-2022,"q2bad@x.no,kinn,2022-11-05T12:00:00Z,web
            q2-b,award-2022,q2b@x.no,kinn,2022-11-05T12:00:00Z,web
            q2-c,award-2022,q2c@x.no,kinn,2022-11-05T12:00:00Z,web
            q2-d,award-2022,"q2d@x.no",kinn,2022-11-05T12:00:00Z,web
            q2-e,award-2022,q2e@x.no,kinn,2022-11-05T12:00:00Z,web

            """
        let r = try read(text, chunk: chunk)
        #expect(r.votes.map(\.id) == ["q2-a", "q2-b", "q2-c", "q2-d", "q2-e"])
        #expect(r.votes.map(\.line) == [2, 4, 5, 6, 7])
        #expect(r.refused.map(\.line) == [3])
        #expect(r.refused.map(\.reason) == ["bad_csv"])
    }

    /// Classic Mac line endings (a bare CR) would make the whole file one row: refused, named.
    @Test func aBareCarriageReturnIsRefusedWithItsReason() throws {
        let bytes = Array("vote_id,election,voter,nominee,cast_at,channel\na,award-2022,v1,kinn,2022-11-03T10:00:00Z,web\rb,award-2022,v2,kinn,2022-11-03T10:00:00Z,web\n".utf8)
        var reader = VoteFileReader(format: .csv, election: nil, identity: VoterIdentity(hasher: Fixtures.hasher), definitions: { _ in nil }, actor: Fixtures.importer)
        var messages: [String] = []
        try bytes.withUnsafeBytes { try reader.feed($0) { if case .refused(_, _, let refusal) = $0 { messages.append(refusal.message) } } }
        try reader.finish { if case .refused(_, _, let refusal) = $0 { messages.append(refusal.message) } }
        #expect(messages.count == 1)
        #expect(messages.first?.contains("carriage return") == true)
        // With quoted fields too: after a closing quote, and inside one.
        for text in ["vote_id,election,voter,nominee,cast_at,channel\n\"a\",\"award-2022\",\"v1\",\"kinn\",\"2022-11-03T10:00:00Z\",\"web\"\r\"b\",\"award-2022\"\n",
                     "vote_id,election,voter,nominee,cast_at,channel\na,award-2022,\"v\r1\",kinn,2022-11-03T10:00:00Z,web\n"] {
            var quoted = VoteFileReader(format: .csv, election: nil, identity: VoterIdentity(hasher: Fixtures.hasher), definitions: { _ in nil }, actor: Fixtures.importer)
            var said: [String] = []
            try Array(text.utf8).withUnsafeBytes { try quoted.feed($0) { if case .refused(_, _, let refusal) = $0 { said.append(refusal.message) } } }
            try quoted.finish { if case .refused(_, _, let refusal) = $0 { said.append(refusal.message) } }
            #expect(said.count == 1 && said[0].contains("carriage return"), "\(said)")
        }
        // A CRLF file reads as usual, whatever the chunking.
        let crlf = try read(header.replacingOccurrences(of: "\n", with: "\r\n") + "a,award-2022,v1,kinn,2022-11-03T10:00:00Z,web\r\nb,award-2022,v2,kinn,2022-11-03T10:00:00Z,web\r\n", chunk: 1)
        #expect(crlf.votes.map(\.id) == ["a", "b"])
        #expect(crlf.refused.isEmpty)
    }

    /// Seeded random damage to a valid file (quotes, commas, line breaks, carriage returns and
    /// bytes inserted, deleted or replaced): every data line is read as a vote or refused with
    /// its own line number, once, and no line is lost or counted twice.
    @Test func everyLineOfADamagedFileIsAccountedFor() throws {
        var random = SplitMix64(seed: 18)   // seeded, so that a failing round can be run again
        let good = (0..<60).map { "v\($0),award-2022,voter-\($0)@x.no,\($0 % 2 == 0 ? "kinn" : "bodo"),2022-11-03T10:00:00Z,web" }
        let noise: [UInt8] = [0x22, 0x22, 0x2C, 0x0A, 0x0D, 0x20, 0x78, 0xFF]
        for round in 0..<400 {
            var body = Array(good.joined(separator: "\n").utf8) + [0x0A]
            for _ in 0..<(1 + Int(random.next() % 6)) {
                let at = Int(random.next() % UInt64(body.count))
                switch random.next() % 3 {
                case 0: body.insert(noise[Int(random.next() % UInt64(noise.count))], at: at)
                case 1: body.remove(at: at)
                default: body[at] = noise[Int(random.next() % UInt64(noise.count))]
                }
            }
            // The data lines: every line after the header that is not blank (a blank line,
            // or one holding only a CR before its LF, is no row).
            var lines = body.split(separator: 0x0A, omittingEmptySubsequences: false)
            if lines.last?.isEmpty == true { lines.removeLast() }
            let dataLines = lines.enumerated().filter { !$0.element.isEmpty && $0.element != [0x0D] }.map { $0.offset + 2 }
            let r = try read(Array(header.utf8) + body, chunk: 1 + round % 13)
            let accounted = (r.votes.map(\.line) + r.refused.map(\.line)).sorted()
            #expect(accounted == dataLines, "round \(round): \(String(decoding: body, as: UTF8.self))")
        }
    }

    @Test func malformedRowsAreLocatedAndTheRestStillRead() throws {
        let text = header + [
            "a,award-2022,v1,kinn,2022-11-03T10:00:00Z,web",         // 2 ok
            "b,award-2022,v2,kinn",                                  // 3 missing column
            "c,award-2022,v3,kinn,2022-11-03T10:00:00Z,web,extra",   // 4 extra column
            "d,award-2022,v\"4,kinn,2022-11-03T10:00:00Z,web",       // 5 quote inside a field
            "e,award-2022,\"v5\"x,kinn,2022-11-03T10:00:00Z,web",    // 6 text after a closing quote
            "f,award-2022,v6,kinn,yesterday,web",                    // 7 bad timestamp
            ",award-2022,v7,kinn,2022-11-03T10:00:00Z,web",          // 8 no vote_id
            "h,award-2022,,kinn,2022-11-03T10:00:00Z,web",           // 9 no voter
            "i,other-election,v9,kinn,2022-11-03T10:00:00Z,web",     // 10 another election
            "j,award-2022,v10,Not A Slug,2022-11-03T10:00:00Z,web",  // 11 not a nominee id
            "k,award-2022,v11,bodo,2022-11-03T10:00:00Z,web",        // 12 ok
        ].joined(separator: "\n") + "\n"
        let r = try read(text)
        #expect(r.votes.map(\.id) == ["a", "k"])
        #expect(r.refused.map(\.line) == [3, 4, 5, 6, 7, 8, 9, 10, 11])
        #expect(r.refused.map(\.reason) == ["missing_column", "extra_column", "bad_csv", "bad_csv", "bad_timestamp",
                                            "missing_value", "missing_value", "wrong_election", "unknown_nominee"])
        #expect(r.refused.first?.id == "b")
    }

    @Test func anUnclosedQuoteDoesNotSwallowTheFile() throws {
        // The quote opened on line 2 never closes; the rows after it are all read.
        let rows = (0..<40).map { "r\($0),award-2022,v\($0),kinn,2022-11-03T10:00:00Z,web" }
        let text = header + "a,award-2022,\"open,kinn,2022-11-03T10:00:00Z,web\n" + rows.joined(separator: "\n") + "\n"
        let r = try read(text, maxRowBytes: 256)
        #expect(r.refused.first?.line == 2)
        #expect(r.refused.first?.reason == "bad_csv")
        #expect(r.votes.count == 40)
        #expect(r.votes.last?.id == "r39")
        // At the end of the file: a truncated last row.
        let truncated = try read(header + "a,award-2022,v,kinn,2022-11-03T10:00:00Z,web\nb,award-2022,\"v")
        #expect(truncated.votes.map(\.id) == ["a"])
        #expect(truncated.refused.map(\.reason) == ["bad_csv"])
    }

    @Test func aTenMegabyteLineIsSkipped() throws {
        let long = String(repeating: "x", count: 10 << 20)
        let r = try read(header + "a,award-2022,\(long),kinn,2022-11-03T10:00:00Z,web\nb,award-2022,v,kinn,2022-11-03T10:00:00Z,web\n",
                         chunk: 65536, maxRowBytes: 64 * 1024)
        #expect(r.refused.map(\.reason) == ["row_too_long"])
        #expect(r.refused.map(\.line) == [2])
        #expect(r.votes.map(\.id) == ["b"])
        #expect(r.votes.map(\.line) == [3])
    }

    @Test func invalidUTF8IsRefusedByRow() throws {
        let bytes = Array((header + "a,award-2022,").utf8) + [0xFF, 0xFE] + Array(",kinn,2022-11-03T10:00:00Z,web\nb,award-2022,v,kinn,2022-11-03T10:00:00Z,web\n".utf8)
        let r = try read(bytes)
        #expect(r.refused.map(\.reason) == ["bad_encoding"])
        #expect(r.votes.map(\.id) == ["b"])
    }

    @Test func aMissingHeaderOrAFileThatIsNotCSVStopsTheFile() throws {
        #expect(throws: VoteFileError.self) { try read("a,award-2022,v,kinn,2022-11-03T10:00:00Z,web\n") }
        #expect(throws: VoteFileError.self) { try read([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13]) }
        #expect(throws: VoteFileError.self) { try read("") }
        let error = #expect(throws: VoteFileError.self) { try read("id,who,what\n1,2,3\n") }
        #expect(error?.line == 1)
        #expect(error?.message.contains("vote_id") == true)
    }

    @Test func ndjsonRowsAndTheirErrors() throws {
        let text = """
        {"vote_id":"a","election":"award-2022","voter":"v1","nominee":"kinn","cast_at":"2022-11-03T10:00:00Z","channel":"sms"}
        not json

        [1,2]
        {"vote_id":7,"election":"award-2022","voter":"v2","nominee":"bodo","cast_at":"2022-11-03T10:00:00Z"}
        {"vote_id":"c","election":"award-2022","voter":"v3","nominee":"kinn"}
        {"vote_id":"d","election":"award-2022","voter":["x"],"nominee":"kinn","cast_at":"2022-11-03T10:00:00Z"}
        {"vote_id":"e","election":"award-2022","voter":"v4","nominee":"kinn","nominee":"bodo","cast_at":"2022-11-03T10:00:00Z"}
        """
        let r = try read(text, .ndjson)
        #expect(r.votes.map(\.id) == ["a", "7"])
        #expect(r.votes.map(\.line) == [1, 5])
        #expect(r.refused.map(\.line) == [2, 4, 6, 7, 8])
        #expect(r.refused.map(\.reason) == ["bad_json", "bad_json", "missing_value", "bad_json", "bad_json"])
    }

    @Test func theFormatFollowsTheName() {
        #expect(VoteFileFormat.guess(fromName: "export.NDJSON") == .ndjson)
        #expect(VoteFileFormat.guess(fromName: "export.jsonl") == .ndjson)
        #expect(VoteFileFormat.guess(fromName: "export.csv") == .csv)
        #expect(VoteFileFormat.guess(fromName: "export.txt") == .csv)
    }
}

