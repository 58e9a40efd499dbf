import BallotImport
import BallotLedger
import BallotDomain

/// A vote file read whole and read in chunks (of a size the input's first byte picks) must
/// give the same rows: the importer meets a file in whatever pieces the socket brings. Rows
/// come in line order, and a file is either read or refused as a whole, the same both ways.
enum VoteFileTarget {
    static let identity = VoterIdentity(hasher: try! VoterHasher(secret: Array("ballot-fuzz voter secret, 32 b..".utf8)))
    static let election = ElectionID(unchecked: "imdi-2022")
    static let definition = ElectionDefinition(
        id: election, title: "Fuzz", opensAt: Timestamp(rfc3339: "2022-11-01T00:00:00Z")!,
        closesAt: Timestamp(rfc3339: "2022-11-11T00:00:00Z")!, criteria: [Criterion(id: Slug(unchecked: "results"), title: "Results", weight: 1)])

    static func run(_ format: VoteFileFormat, _ input: UnsafeRawBufferPointer) {
        guard let first = input.first else { return }
        let file = UnsafeRawBufferPointer(rebasing: input.dropFirst())
        let whole = read(format, file, chunk: max(file.count, 1))
        let pieces = read(format, file, chunk: Int(first % 64) + 1)
        precondition(whole == pieces, "the file read whole gave \(whole) but in chunks of \(Int(first % 64) + 1) \(pieces)")
        guard case .rows(let rows) = whole else { return }
        let lines = rows.map(\.line)
        precondition(zip(lines, lines.dropFirst()).allSatisfy { $0 < $1 }, "rows out of line order: \(lines.prefix(20))")
        precondition(lines.allSatisfy { $0 >= 1 }, "a row with line number below 1: \(lines.prefix(20))")
    }

    enum Outcome: Equatable {
        case rows([Row])
        case refused(line: Int, message: String)
    }

    /// What a row came to, to compare: the vote (its key and command), or the refusal. Compared
    /// as values: a description of each would cost more than reading the file.
    struct Row: Equatable, CustomStringConvertible {
        enum What: Equatable {
            case vote(key: String, Command)
            case refused(voteID: String, ImportRefusal)
        }
        let line: Int
        let what: What
        var description: String { "\(line): \(what)" }
    }

    static func read(_ format: VoteFileFormat, _ file: UnsafeRawBufferPointer, chunk: Int) -> Outcome {
        var reader = VoteFileReader(format: format, election: nil, identity: identity,
                                    definitions: { $0 == election ? definition : nil }, actor: Actor(role: .importer, uid: 1000),
                                    maxRowBytes: 256)
        var rows: [Row] = []
        func note(_ row: VoteFileRow) {
            switch row {
            case .vote(let line, let submission):
                rows.append(Row(line: line, what: .vote(key: submission.idempotencyKey, submission.command)))
            case .refused(let line, let voteID, let refusal):
                rows.append(Row(line: line, what: .refused(voteID: voteID, refusal)))
            }
        }
        do {
            var start = 0
            while start < file.count {
                let end = min(start + chunk, file.count)
                try reader.feed(UnsafeRawBufferPointer(rebasing: file[start..<end]), note)
                start = end
            }
            try reader.finish(note)
        } catch {
            return .refused(line: error.line, message: error.message)
        }
        return .rows(rows)
    }
}
