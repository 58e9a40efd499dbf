public import BallotDomain
public import BallotLedger
import BallotFormat
import BallotAudit
import BallotProtocol

/// The two vote-file formats of the contract: CSV with a header row, or one JSON object per line.
public enum VoteFileFormat: String, Sendable, CaseIterable {
    case csv, ndjson

    /// `.ndjson`, `.jsonl` and `.json` files are NDJSON; anything else is CSV.
    public static func guess(fromName name: String) -> VoteFileFormat {
        let lower = name.lowercased()
        return [".ndjson", ".jsonl", ".json"].contains { lower.hasSuffix($0) } ? .ndjson : .csv
    }
}

/// What one row of a vote file became.
public enum VoteFileRow {
    /// A vote ready for the rules: `vote.cast` with the row's `vote_id` as idempotency key.
    case vote(line: Int, Submission)
    /// A row refused before the rules saw it; `voteID` is empty when the row has none.
    case refused(line: Int, voteID: String, ImportRefusal)
}

/// A problem that stops the whole file: nothing in it can be read as votes.
public struct VoteFileError: Error, Sendable, CustomStringConvertible {
    public let line: Int
    public let message: String
    public var description: String { "line \(line): \(message)" }
}

/// Turns the bytes of a vote file, as they stream in, into `vote.cast` submissions or located
/// refusals. Columns (CSV header names or NDJSON keys): `vote_id`, `election`, `voter`,
/// `nominee`, `cast_at`, and optionally `channel`; `election` may be left out when the import
/// names its election. The voter identifier is keyed-hashed here and goes no further.
public struct VoteFileReader {
    public static let columns = ["vote_id", "election", "voter", "nominee", "cast_at", "channel"]

    public let format: VoteFileFormat
    /// The import's election: given, or taken from the first row that names one.
    public private(set) var election: ElectionID?
    private let identity: VoterIdentity
    /// The definition of an election by id (its rules say how a voter becomes a key), asked
    /// once per election the file names.
    private let definitionOf: (ElectionID) -> ElectionDefinition?
    /// Each election's voter rule, asked once; the last one used, in front (a file is nearly
    /// always one election).
    private var rules: [ElectionID: VoterIdentity.Rule] = [:]
    private var lastRule: (election: ElectionID, rule: VoterIdentity.Rule)?
    private let actor: Actor
    private let maxRowBytes: Int
    private var csv: CSVScanner
    private var lines: LineSplitter
    /// CSV column index of each of `columns`, once the header is read.
    private var columnIndex: [Int?]?
    private var headerWidth = 0

    public init(format: VoteFileFormat, election: ElectionID?, identity: VoterIdentity,
                definitions: @escaping (ElectionID) -> ElectionDefinition?, actor: Actor, maxRowBytes: Int = 64 * 1024) {
        self.format = format
        self.election = election
        self.identity = identity
        self.definitionOf = definitions
        self.actor = actor
        self.maxRowBytes = maxRowBytes
        csv = CSVScanner(maxRowBytes: maxRowBytes)
        lines = LineSplitter(maxLineBytes: maxRowBytes)
    }

    /// Reads the next chunk of the file. Throws only for a problem that stops the whole file.
    public mutating func feed(_ chunk: UnsafeRawBufferPointer, _ out: (VoteFileRow) -> Void) throws(VoteFileError) {
        try read(chunk, atEnd: false, out)
    }

    /// The end of the file.
    public mutating func finish(_ out: (VoteFileRow) -> Void) throws(VoteFileError) {
        try read(UnsafeRawBufferPointer(start: nil, count: 0), atEnd: true, out)
        if format == .csv && columnIndex == nil {
            throw VoteFileError(line: 1, message: "the file has no header row; expected the columns \(Self.columns.joined(separator: ", ")) (channel optional)")
        }
    }

    private mutating func read(_ chunk: UnsafeRawBufferPointer, atEnd: Bool, _ out: (VoteFileRow) -> Void) throws(VoteFileError) {
        do {
            switch format {
            case .csv:
                let handleRow: (borrowing CSVScanner.Row) throws -> Void = { row in try self.csvRow(row, out) }
                let handleProblem: (Int, CSVScanner.Problem) throws -> Void = { line, problem in
                    switch problem {
                    case .badQuoting(let why): out(.refused(line: line, voteID: "", ImportRefusal(ImportRefusal.badCSV, why)))
                    case .rowTooLong: out(.refused(line: line, voteID: "", ImportRefusal(ImportRefusal.rowTooLong, "the row is longer than \(self.maxRowBytes) bytes")))
                    }
                }
                var scanner = csv
                defer { csv = scanner }
                if atEnd { try scanner.finish(row: handleRow, problem: handleProblem) } else { try scanner.feed(chunk, row: handleRow, problem: handleProblem) }
            case .ndjson:
                var splitter = lines
                defer { lines = splitter }
                let handle: (Int, UnsafeRawBufferPointer?) -> Void = { line, bytes in
                    guard let bytes else {
                        out(.refused(line: line, voteID: "", ImportRefusal(ImportRefusal.rowTooLong, "the line is longer than \(self.maxRowBytes) bytes")))
                        return
                    }
                    self.jsonRow(line, bytes, out)
                }
                if atEnd { splitter.finish(handle) } else { splitter.feed(chunk, handle) }
            }
        } catch let error as VoteFileError {
            throw error
        } catch {
            preconditionFailure("unexpected \(error)")
        }
    }

    // MARK: CSV

    private mutating func csvRow(_ row: borrowing CSVScanner.Row, _ out: (VoteFileRow) -> Void) throws(VoteFileError) {
        guard let index = columnIndex else {
            try readHeader(row)
            return
        }
        func field(_ c: Int) -> UnsafeRawBufferPointer? { index[c].flatMap { $0 < row.count ? row.field($0) : nil } }
        if row.count != headerWidth {
            let voteID = field(0).flatMap(String.init(utf8Bytes:)) ?? ""
            let (reason, what) = row.count < headerWidth ? (ImportRefusal.missingColumn, "fewer") : (ImportRefusal.extraColumn, "more")
            out(.refused(line: row.line, voteID: voteID, ImportRefusal(reason, "the row has \(row.count) fields, \(what) than the header's \(headerWidth)")))
            return
        }
        out(vote(line: row.line, voteID: field(0), election: field(1), voter: field(2), nominee: field(3), castAt: field(4), channel: field(5)))
    }

    private mutating func readHeader(_ row: borrowing CSVScanner.Row) throws(VoteFileError) {
        var names: [String] = []
        for i in 0..<row.count {
            let name = String(decoding: row.field(i), as: UTF8.self)
            names.append(name.trimmingSpaces.lowercased())
        }
        let index = Self.columns.map { names.firstIndex(of: $0) }
        let required = election == nil ? ["vote_id", "election", "voter", "nominee", "cast_at"] : ["vote_id", "voter", "nominee", "cast_at"]
        let missing = required.filter { !names.contains($0) }
        guard missing.isEmpty else {
            let found = names.prefix(8).map { "'\(String($0.prefix(40)))'" }.joined(separator: ", ")
            throw VoteFileError(line: row.line, message: "the header row has no \(missing.joined(separator: ", ")) column\(missing.count > 1 ? "s" : ""); expected \(Self.columns.joined(separator: ", ")) (channel optional\(election == nil ? "" : "; election optional with --election")), found \(found)")
        }
        columnIndex = index
        headerWidth = row.count
    }

    // MARK: NDJSON

    private mutating func jsonRow(_ line: Int, _ bytes: UnsafeRawBufferPointer, _ out: (VoteFileRow) -> Void) {
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return }  // a blank line is not a row
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            out(.refused(line: line, voteID: "", ImportRefusal(ImportRefusal.badJSON, "not JSON: \(error)")))
            return
        }
        guard case .object = value else {
            out(.refused(line: line, voteID: "", ImportRefusal(ImportRefusal.badJSON, "the line is JSON but not an object")))
            return
        }
        var texts: [[UInt8]?] = []
        for column in Self.columns {
            switch value[column] {
            case .string(let s)?: texts.append(Array(s.utf8))
            case .int(let i)? where column == "vote_id": texts.append(Array(String(i).utf8))
            case nil, .null?: texts.append(nil)
            case let other?:
                let voteID: String = if case .string(let s)? = value["vote_id"] { s } else { "" }
                out(.refused(line: line, voteID: voteID, ImportRefusal(ImportRefusal.badJSON, "'\(column)' is \(other.text), not a string")))
                return
            }
        }
        func field(_ c: Int) -> UnsafeRawBufferPointer? {
            texts[c].map { UnsafeRawBufferPointer(start: $0.withUnsafeBytes { $0.baseAddress }, count: $0.count) }
        }
        // The arrays outlive the call below, so their storage stays valid while it reads them.
        withExtendedLifetime(texts) {
            out(vote(line: line, voteID: field(0), election: field(1), voter: field(2), nominee: field(3), castAt: field(4), channel: field(5)))
        }
    }

    // MARK: Both formats

    /// Checks a row's fields and makes the submission `vote.cast` would make of them.
    private mutating func vote(line: Int, voteID: UnsafeRawBufferPointer?, election electionField: UnsafeRawBufferPointer?,
                               voter: UnsafeRawBufferPointer?, nominee: UnsafeRawBufferPointer?, castAt: UnsafeRawBufferPointer?,
                               channel: UnsafeRawBufferPointer?) -> VoteFileRow {
        func refuse(_ id: String, _ reason: String, _ message: String) -> VoteFileRow {
            .refused(line: line, voteID: id, ImportRefusal(reason, message))
        }
        func text(_ b: UnsafeRawBufferPointer?) -> String { b.flatMap(String.init(utf8Bytes:)) ?? "" }
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        let (electionField, nominee, castAt, channel) = (electionField ?? empty, nominee ?? empty, castAt ?? empty, channel ?? empty)
        guard let id = voteID.map(String.init(utf8Bytes:)) ?? "",
              Self.isUTF8(electionField), Self.isUTF8(nominee), Self.isUTF8(castAt), Self.isUTF8(channel),
              Self.isUTF8(voter ?? empty) else {
            return refuse(text(voteID), ImportRefusal.badEncoding, "the row holds bytes that are not UTF-8")
        }
        guard !id.isEmpty else { return refuse(id, ImportRefusal.missingValue, "vote_id is empty") }
        guard id.utf8.count <= RecordCodec.maxIdempotencyKeyBytes else {
            return refuse(String(id.prefix(64)), ImportRefusal.missingValue, "vote_id is \(id.utf8.count) bytes; at most \(RecordCodec.maxIdempotencyKeyBytes)")
        }
        guard let voter, !VoterHasher.isBlank(utf8: voter) else {
            return refuse(id, ImportRefusal.missingValue, "voter is empty")
        }
        guard !nominee.isEmpty else { return refuse(id, ImportRefusal.missingValue, "nominee is empty") }
        guard !castAt.isEmpty else { return refuse(id, ImportRefusal.missingValue, "cast_at is empty; an imported vote must say when it was cast") }
        let rowElection: ElectionID
        if let election, electionField.isEmpty || election.value.hasUTF8(electionField) {
            rowElection = election
        } else if electionField.isEmpty {
            return refuse(id, ImportRefusal.missingValue, "election is empty and the import names none")
        } else {
            let electionText = text(electionField)
            guard let named = try? Slug(electionText, what: "election") else {
                return refuse(id, ImportRefusal.wrongElection, "'\(electionText.prefix(64))' is not an election id")
            }
            if let election, named != election {
                return refuse(id, ImportRefusal.wrongElection, "the row is for '\(named)'; this import is for '\(election)'")
            }
            election = named
            rowElection = named
        }
        guard let nomineeID = known.nominee(nominee) else {
            return refuse(id, ErrorCode.unknownNominee.rawValue, "'\(text(nominee).prefix(64))' is not a nominee id")
        }
        guard let time = Timestamp.parse(castAt) else {
            return refuse(id, ImportRefusal.badTimestamp, "cast_at '\(text(castAt).prefix(64))' is not an RFC 3339 time such as 2022-11-03T10:00:00Z")
        }
        guard channel.count <= Limits.channel else {
            return refuse(id, ErrorCode.badRequest.rawValue, "channel is longer than \(Limits.channel) bytes")
        }
        let rule: VoterIdentity.Rule
        if let last = lastRule, last.election == rowElection {
            rule = last.rule
        } else {
            if let known = rules[rowElection] {
                rule = known
            } else {
                rule = VoterIdentity.Rule(definitionOf(rowElection))
                rules[rowElection] = rule
            }
            lastRule = (rowElection, rule)
        }
        let command = Command.castVote(election: rowElection, nominee: nomineeID, voter: identity.key(forUTF8: voter, by: rule),
                                       castAt: time, channel: known.channel(channel))
        return .vote(line: line, Submission(command, by: actor, idempotencyKey: id))
    }

    private static func isUTF8(_ b: UnsafeRawBufferPointer) -> Bool {
        b.allSatisfy { $0 < 0x80 } || String(validating: b, as: UTF8.self) != nil
    }

    private var known = KnownValues()
}

/// The nominee ids and channels a file has named so far. A file names a handful of them a
/// million times over, so each is checked and made into a String once rather than once a row.
struct KnownValues {
    static let limit = 64
    private var nominees: [NomineeID] = []
    private var channels: [String] = []

    /// The nominee id the bytes spell, or nil if they are not a valid id. The bytes are UTF-8.
    mutating func nominee(_ bytes: UnsafeRawBufferPointer) -> NomineeID? {
        if let seen = nominees.first(where: { $0.value.hasUTF8(bytes) }) { return seen }
        guard let id = try? Slug(String(decoding: bytes, as: UTF8.self), what: "nominee") else { return nil }
        if nominees.count < Self.limit { nominees.append(id) }
        return id
    }

    /// The channel the bytes spell. The bytes are UTF-8.
    mutating func channel(_ bytes: UnsafeRawBufferPointer) -> String {
        if let seen = channels.first(where: { $0.hasUTF8(bytes) }) { return seen }
        let channel = String(decoding: bytes, as: UTF8.self)
        if channels.count < Self.limit { channels.append(channel) }
        return channel
    }
}

/// Splits NDJSON bytes into lines as they stream in; a line longer than the limit is reported
/// (with nil bytes) and skipped to its line break. Lines end at LF; a CR before it is dropped.
struct LineSplitter {
    let maxLineBytes: Int
    private var pending: [UInt8] = []
    private var line = 1
    private var skipping = false

    init(maxLineBytes: Int) { self.maxLineBytes = maxLineBytes }

    mutating func feed(_ chunk: UnsafeRawBufferPointer, _ emit: (Int, UnsafeRawBufferPointer?) -> Void) {
        var chunk = chunk
        if skipping {
            guard let lf = chunk.firstIndex(of: 0x0A) else { return }
            skipping = false
            line += 1
            chunk = UnsafeRawBufferPointer(rebasing: chunk[(lf + 1)...])
        }
        pending.append(contentsOf: chunk)
        var start = 0
        while let lf = LineBreaks.firstLF(in: pending, from: start) {
            emitLine(start, lf, emit)
            start = lf + 1
        }
        pending.removeFirst(start)
        // Too long without its end in sight.
        if LineBreaks.length(of: pending, from: 0, to: pending.count) > maxLineBytes {
            emit(line, nil)
            pending.removeAll()
            skipping = true
        }
    }

    mutating func finish(_ emit: (Int, UnsafeRawBufferPointer?) -> Void) {
        if !skipping && !pending.isEmpty { emitLine(0, pending.count, emit) }
        pending.removeAll()
        skipping = false
    }

    private mutating func emitLine(_ start: Int, _ end: Int, _ emit: (Int, UnsafeRawBufferPointer?) -> Void) {
        let length = LineBreaks.length(of: pending, from: start, to: end)
        if length > maxLineBytes {
            emit(line, nil)
        } else {
            pending.withUnsafeBytes { emit(line, UnsafeRawBufferPointer(rebasing: $0[start..<(start + length)])) }
        }
        line += 1
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" || c == "\u{FEFF}" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return String(s)
    }
}
