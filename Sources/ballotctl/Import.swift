import ArgumentParser
import BallotClient
import BallotDomain
import BallotProtocol
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `ballotctl import FILE...`: streams each vote file to the daemon, which reads, checks and
/// appends its rows (docs/protocol.md, "import"). Safe to run again: rows already imported are
/// counted as already present, so an import cut off halfway is finished by running it again.
struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import vote files (CSV with a header row, or NDJSON) into the ledger.",
        discussion: """
        Columns: vote_id, election, voter, nominee, cast_at, and optionally channel (election may \
        be left out with --election). vote_id makes the import idempotent: running the same file \
        again adds nothing. Refused rows are listed with file, line, vote_id and reason. Exits 0 \
        only if every row was accepted or already present, 1 if rows were refused, 65 if a file \
        cannot be read at all.
        """)
    @OptionGroup var connection: Connection
    @Argument(help: "Vote files to import, in order.") var files: [String]
    @Option(help: "The election the rows are for (rows that name another are refused).") var election: String?
    @Option(help: "csv or ndjson (default: from the file name; .ndjson/.jsonl/.json are NDJSON).") var format: String?
    @Flag(name: .customLong("dry-run"), help: "Check every row against the ledger, append nothing.") var dryRun = false
    @Option(help: "Write the refused rows here: CSV files as CSV with their header plus reject_line, reject_reason and reject_message columns (fix and import it again); NDJSON files as NDJSON.")
    var rejects: String?
    @Flag(help: "No progress and no per-row messages; the summary only.") var quiet = false

    func validate() throws {
        if let format, !["csv", "ndjson"].contains(format) { throw ValidationError("--format must be csv or ndjson") }
    }

    func run() throws {
        var summaries: [ImportSummary] = []
        var rejectWriter: RejectWriter?
        var everyRowIn = true
        for file in files {
            var size: UInt64 = 0
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: file),
                  (attributes[.type] as? FileAttributeType) == .typeRegular,
                  FileManager.default.isReadableFile(atPath: file) else {
                FileHandle.standardError.write(Data("ballotctl: \(file): not a readable file\n".utf8))
                throw ExitCode(Exit.dataError)
            }
            size = (attributes[.size] as? NSNumber)?.uint64Value ?? 0
            let outcome = try importFile(file, size: size)
            let summary: ImportSummary
            switch outcome.result {
            case .success(let s): summary = s
            case .failure(let error):
                FileHandle.standardError.write(Data("ballotctl: \(file): \(error.code.rawValue): \(error.message)\n".utf8))
                throw ExitCode(error.code == .badRequest ? Exit.dataError : Exit.refused)
            }
            summaries.append(summary)
            if !outcome.refusedLines.isEmpty {
                everyRowIn = false
                if let rejects {
                    if rejectWriter == nil { rejectWriter = try RejectWriter(path: rejects, format: format) }
                    try rejectWriter!.add(file: file, refusals: outcome.refusedLines)
                }
            }
        }
        if connection.json {
            print((summaries.count == 1 ? summaries[0].json : .object([("imports", .array(summaries.map(\.json)))])).text)
        } else {
            print(Self.table(summaries))
        }
        if !everyRowIn { throw ExitCode(Exit.refused) }
    }

    struct Outcome {
        var result: Result<ImportSummary, ProtocolError> = .failure(ProtocolError(.internal, "no summary"))
        /// Line → (vote_id, reason, message) of every refused row.
        var refusedLines: [Int: (String, String, String)] = [:]
    }

    private func importFile(_ file: String, size: UInt64) throws -> Outcome {
        let client = try connection.client(timeout: 0)
        let request = ImportRequest(file: (file as NSString).lastPathComponent, size: size, format: format,
                                    election: try election.map { try connection.slug($0, "election") }, dryRun: dryRun)
        var outcome = Outcome()
        do {
            let goAhead = try client.call(.importFile(request))
            if let refusal = goAhead.refusal { return Outcome(result: .failure(refusal)) }
            let go = try client.result(of: goAhead, as: ImportGoAhead.self)
            guard go.send == size else {
                throw ClientError.protocolViolation("import: the daemon asks for \(go.send) bytes of \(file), which holds \(size)")
            }
            // The bytes go on another thread while this one reads refusals and progress.
            let sender = FileSender(client: client, path: file, size: size)
            sender.start()
            let progress = Progress(file: file, size: size, quiet: quiet)
            var shown = 0
            while let line = try client.readReply() {
                var streamed: ImportLine?
                if case .streamed(let value) = line {
                    do {
                        streamed = try ImportLine(value)
                    } catch {
                        throw ClientError.protocolViolation(error.message)
                    }
                }
                if case .refused(let refused)? = streamed {
                    let (row, id, reason, message) = (Int(refused.line), refused.voteID, refused.reason, refused.message)
                    outcome.refusedLines[row] = (id, reason, message)
                    if !quiet && shown < 20 {
                        progress.clear()
                        FileHandle.standardError.write(Data("\(file):\(row): \(id.isEmpty ? "" : "\(id): ")\(reason): \(message)\n".utf8))
                    }
                    shown += 1
                } else if case .progress(let p)? = streamed {
                    progress.update(bytes: p.bytes, rows: Int(p.rows))
                } else if line.isReply {
                    progress.finish()
                    if shown > 20 && !quiet {
                        FileHandle.standardError.write(Data("\(file): \(shown - 20) more refused rows\(rejects == nil ? " (--rejects FILE lists them all)" : "")\n".utf8))
                    }
                    sender.wait()
                    if let failure = sender.failure {
                        FileHandle.standardError.write(Data("ballotctl: \(file): \(failure)\n".utf8))
                        throw ExitCode(Exit.dataError)
                    }
                    if let refusal = line.refusal {
                        outcome.result = .failure(refusal)
                    } else {
                        // A summary of the wrong form is the daemon's fault: exit 70, below.
                        outcome.result = .success(try client.result(of: line, as: ImportSummary.self))
                    }
                    return outcome
                }
            }
            throw ClientError.connection("the daemon closed the connection during the import of \(file)")
        } catch let error as ClientError {
            throw Connection.exit(for: error)
        }
    }

    static func table(_ summaries: [ImportSummary]) -> String {
        func n(_ v: UInt64) -> String { NumberFormatter.localizedString(from: NSNumber(value: v), number: .decimal) }
        var rows = [["file", "rows", "accepted", "already present", "refused", "import event"]]
        var reasons: [String: UInt64] = [:]
        for s in summaries {
            for (reason, count) in s.refused { reasons[reason, default: 0] += count }
            let event = s.dryRun ? "dry run" : s.importSeq.map { "#\($0)" } ?? "-"
            rows.append([s.file, n(s.rows), n(s.accepted), n(s.alreadyPresent), n(s.refusedRows), event])
        }
        var out = Tables.render(rows)
        if !reasons.isEmpty {
            out += "\nrefused by reason: " + reasons.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        }
        return out
    }
}

/// Writes the file's bytes to the daemon from a thread of its own, a megabyte at a time.
final class FileSender: @unchecked Sendable {
    private let client: BallotClient
    private let path: String
    private let size: UInt64
    private let done = DispatchSemaphore(value: 0)
    private(set) var failure: String?

    init(client: BallotClient, path: String, size: UInt64) {
        self.client = client
        self.path = path
        self.size = size
    }

    func start() { Thread { self.run(); self.done.signal() }.start() }
    func wait() { done.wait() }

    private func run() {
        guard let handle = FileHandle(forReadingAtPath: path) else { failure = "cannot open"; return }
        defer { try? handle.close() }
        var sent: UInt64 = 0
        while sent < size {
            let chunk = handle.readData(ofLength: Int(min(1 << 20, size - sent)))
            if chunk.isEmpty {
                failure = "the file shrank while it was being imported (\(sent) of \(size) bytes)"
                // The daemon still expects the rest: pad nothing, drop the connection.
                client.finishSending()
                return
            }
            do { try client.send(raw: [UInt8](chunk)) } catch { failure = "\(error)"; return }
            sent += UInt64(chunk.count)
        }
    }
}

/// Progress on standard error: a bar on a terminal, a plain line every few seconds otherwise.
final class Progress {
    let file: String
    let size: UInt64
    let quiet: Bool
    let terminal = isatty(2) != 0
    let started = Date()
    var lastShown = Date.distantPast
    var drawn = false

    init(file: String, size: UInt64, quiet: Bool) {
        self.file = file
        self.size = size
        self.quiet = quiet
    }

    func update(bytes: UInt64, rows: Int) {
        guard !quiet else { return }
        let now = Date()
        guard now.timeIntervalSince(lastShown) >= (terminal ? 0.1 : 2) else { return }
        lastShown = now
        let elapsed = max(now.timeIntervalSince(started), 0.001)
        let fraction = size == 0 ? 1 : Double(bytes) / Double(size)
        let rate = Double(rows) / elapsed
        let eta = fraction > 0 ? elapsed * (1 - fraction) / fraction : 0
        let figures = String(format: "%3.0f%% %@ rows %@ rows/s ETA %@", fraction * 100, Self.count(rows), Self.count(Int(rate)), Self.duration(eta))
        if terminal {
            let width = 30
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            FileHandle.standardError.write(Data("\r\(file) \(bar) \(figures)\u{1B}[K".utf8))
            drawn = true
        } else {
            FileHandle.standardError.write(Data("import \(file): \(figures)\n".utf8))
        }
    }

    func clear() {
        if drawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)); drawn = false }
    }

    func finish() { clear() }

    static func count(_ n: Int) -> String { NumberFormatter.localizedString(from: NSNumber(value: n), number: .decimal) }
    static func duration(_ s: Double) -> String { s < 60 ? String(format: "%.0fs", s) : String(format: "%dm%02ds", Int(s) / 60, Int(s) % 60) }
}

/// The refused rows, copied from their files so they can be fixed and imported again.
struct RejectWriter {
    let out: FileHandle
    var wroteCSVHeader = false

    init(path: String, format: String?) throws {
        self.format = format
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            FileHandle.standardError.write(Data("ballotctl: cannot write the rejects file \(path)\n".utf8))
            throw ExitCode(Exit.dataError)
        }
        out = handle
    }

    /// Copies each refused row's line (the first line of a row that spans several) with where
    /// and why it was refused.
    mutating func add(file: String, refusals: [Int: (String, String, String)]) throws {
        let ndjson = (format ?? "").isEmpty ? [".ndjson", ".jsonl", ".json"].contains { file.lowercased().hasSuffix($0) } : format == "ndjson"
        var lineNumber = 0
        try forEachLine(of: file) { line in
            lineNumber += 1
            if lineNumber == 1 && !ndjson {
                if !wroteCSVHeader {
                    out.write(Data((line.trimmingPrefix("\u{FEFF}") + ",reject_line,reject_reason,reject_message\n").utf8))
                    wroteCSVHeader = true
                }
                return
            }
            guard let (_, reason, message) = refusals[lineNumber] else { return }
            if ndjson {
                let reject: JSONValue = .object([("reject_file", .string(file)), ("reject_line", .int(lineNumber)),
                                                 ("reject_message", .string(message)), ("reject_reason", .string(reason)), ("row", .string(line))])
                out.write(Data((reject.text + "\n").utf8))
            } else {
                out.write(Data("\(line),\(lineNumber),\(reason),\(Self.quoted(message))\n".utf8))
            }
        }
    }

    let format: String?

    static func quoted(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }

    private func forEachLine(of path: String, _ body: (String) throws -> Void) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else { return }
        defer { try? handle.close() }
        var pending: [UInt8] = []
        while true {
            let chunk = handle.readData(ofLength: 1 << 20)
            if chunk.isEmpty { break }
            pending += chunk
            var start = 0
            while let lf = pending[start...].firstIndex(of: 0x0A) {
                var end = lf
                if end > start && pending[end - 1] == 0x0D { end -= 1 }
                try body(String(decoding: pending[start..<end], as: UTF8.self))
                start = lf + 1
            }
            pending.removeFirst(start)
        }
        if !pending.isEmpty { try body(String(decoding: pending, as: UTF8.self)) }
    }
}
