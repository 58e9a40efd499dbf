import ArgumentParser
import FoundationEssentials  // (not Foundation: it would load ICU and cost every start milliseconds)
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import BallotDomain
import BallotAudit
import BallotFormat
import BallotReport

/// The auditor's tool: works on a ledger directory (a copy, or the live one read-only) and
/// needs no daemon. Every number it prints is re-derived from the records.
@main
struct BallotReplay: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ballot-replay",
        abstract: "Verify a BallotLedger ledger and re-derive its numbers, without the daemon.",
        discussion: """
            Exit codes of verify: 0 verified; 1 the ledger is intact but a stored projection or \
            checkpoint disagrees with the replay; 2 tampering or corruption found (the first bad \
            sequence number is printed); 64 usage error; 66 ledger not found or unreadable. Any \
            command: 73 report cannot write its page; 74 standard output cannot be written.
            """,
        subcommands: [Verify.self, TallyCommand.self, RankingCommand.self, Diff.self, Export.self, ReceiptCommand.self, Report.self, TilesCommand.self, MonitorCommand.self])
}

enum Exit {
    static let tampered: Int32 = 2
    static let unreadable: Int32 = 66
}

struct LedgerOption: ParsableArguments {
    @Option(help: "The ledger directory (holding data.mdb), a copy or the live one; opened read-only.")
    var ledger: String

    /// Opens the ledger read-only, or exits 66 with what is wrong.
    func open() throws -> LedgerReader {
        var info = stat()
        guard stat(ledger, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            fail(Exit.unreadable, "there is no ledger directory at \(ledger)")
        }
        guard FileManager.default.fileExists(atPath: "\(ledger)/data.mdb") else {
            fail(Exit.unreadable, "\(ledger) holds no data.mdb: it is not a ledger directory")
        }
        do {
            return try LedgerReader.openReadOnly(path: ledger)
        } catch {
            fail(Exit.unreadable, "cannot read the ledger at \(ledger): \(error)")
        }
    }
}

/// Prints `message` to standard error and exits with `code`.
func fail(_ code: Int32, _ message: String) -> Never {
    _ = writeFully(STDERR_FILENO, Array("ballot-replay: \(message)\n".utf8))  // (exits with `code` even if that fails)
    exit(code)
}

/// Runs a read that decodes records; a record that does not decode ends the command with 2 (and
/// a pointer to `verify`, unless this is it).
func reading<R>(inVerify: Bool = false, _ body: () throws -> R) -> R {
    do {
        return try body()
    } catch let error as LedgerError {
        if case .corruptRecord = error {
            fail(Exit.tampered, inVerify ? "\(error)" : "\(error); run 'ballot-replay verify' for the full report")
        }
        fail(Exit.unreadable, "\(error)")
    } catch {
        fail(Exit.unreadable, "\(error)")
    }
}

/// A 64-hex-digit public key from a file (what `ballotd` writes as `checkpoint.key.pub`).
func readPublicKey(_ path: String?) -> Digest32? {
    guard let path else { return nil }
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        fail(64, "cannot read the public key file \(path)")
    }
    let words = text.split(whereSeparator: \.isWhitespace)  // the key, and perhaps a newline around it
    guard words.count == 1, let key = Digest32(hex: String(words[0])) else {
        fail(64, "\(path) does not hold an Ed25519 public key as 64 hex digits")
    }
    return key
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every record, the Merkle tree, every checkpoint and every stored projection by a replay from scratch.")
    @OptionGroup var ledger: LedgerOption
    @Option(help: "The daemon's checkpoint public key (64 hex digits, e.g. checkpoint.key.pub); checkpoints signed by any other key fail.")
    var pubkey: String?
    @Flag(help: "Print the verdict as one JSON object.") var json = false

    func run() throws {
        let pinned = readPublicKey(pubkey)
        let reader = try ledger.open()
        let started = ContinuousClock.now
        let report = reading(inVerify: true) { try Audit.verify(reader, pinnedKey: pinned) }
        let elapsed = ContinuousClock.now - started
        print(json ? Verdict.json(report, ledger: ledger.ledger, elapsed: elapsed) : Verdict.text(report, ledger: ledger.ledger, elapsed: elapsed))
        if report.exitCode != 0 { throw ExitCode(report.exitCode) }
    }
}

struct UntilOptions: ParsableArguments {
    @Option(name: .customLong("until-seq"), help: "Replay through this sequence number.") var untilSeq: UInt64?
    @Option(help: "Replay the events recorded at or before this RFC 3339 time.") var until: String?

    func validate() throws {
        if untilSeq != nil && until != nil { throw ValidationError("give --until-seq or --until, not both") }
        if let until, Timestamp(rfc3339: until) == nil { throw ValidationError("--until '\(until)' is not an RFC 3339 time such as 2022-11-11T00:00:00Z") }
    }

    var bound: Audit.Until {
        if let untilSeq { return .seq(untilSeq) }
        if let until, let t = Timestamp(rfc3339: until) { return .time(t) }
        return .end
    }
}

/// The replayed state of one election, or exit 66 naming the elections there are.
func replayedElection(_ id: String, in state: LedgerState) -> ElectionState {
    guard Slug.isValid(id), let e = state[Slug(unchecked: id)] else {
        let known = state.elections.map(\.id.value).joined(separator: ", ")
        fail(Exit.unreadable, "the ledger (as replayed) holds no election '\(id)'; it holds: \(known.isEmpty ? "none" : known)")
    }
    return e
}

struct TallyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tally", abstract: "The public vote as it stood at a past moment (or now).")
    @OptionGroup var ledger: LedgerOption
    @Option(help: "The election id.") var election: String
    @OptionGroup var until: UntilOptions
    @Flag(help: "Print the canonical tally document (as the daemon stores it).") var json = false

    func run() throws {
        let reader = try ledger.open()
        let (state, last) = reading { try Audit.replay(reader, until: until.bound) }
        let tally = Tally(replayedElection(election, in: state))
        if json { print(String(decoding: tally.json.serialized(), as: UTF8.self)); return }
        print(Text.asOf(last))
        print(Text.tally(tally))
    }
}

struct RankingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ranking", abstract: "The combined ranking as it stood at a past moment (or now).")
    @OptionGroup var ledger: LedgerOption
    @Option(help: "The election id.") var election: String
    @OptionGroup var until: UntilOptions
    @Flag(help: "Print the canonical ranking document (as the daemon stores it).") var json = false

    func run() throws {
        let reader = try ledger.open()
        let (state, last) = reading { try Audit.replay(reader, until: until.bound) }
        let ranking = Ranking(replayedElection(election, in: state))
        if json { print(String(decoding: ranking.json.serialized(), as: UTF8.self)); return }
        print(Text.asOf(last))
        print(Text.ranking(ranking))
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export", abstract: "Every event decoded, one JSON object per line, with its leaf hash.")
    @OptionGroup var ledger: LedgerOption
    @Option(help: "Output format (only ndjson).") var format = "ndjson"
    @Option(name: .customLong("from-seq"), help: "The first event to export.") var fromSeq: UInt64 = 1

    func validate() throws {
        guard format == "ndjson" else { throw ValidationError("--format '\(format)': only ndjson is supported") }
    }

    func run() throws {
        let reader = try ledger.open()
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 16)
        reading {
            try reader.forEachRecord(from: fromSeq) { record, bytes, _ in
                buffer.append(contentsOf: EventJSON.render(record, leafHash: MerkleHash.leaf(bytes)).serialized())
                buffer.append(0x0A)
                if buffer.count >= 1 << 16 {
                    writeOut(buffer)
                    buffer.removeAll(keepingCapacity: true)
                }
                return true
            }
        }
        writeOut(buffer)
    }
}
