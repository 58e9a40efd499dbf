import ArgumentParser
import BallotClient
import BallotDomain
import BallotProtocol
import Foundation

/// Exit codes scripts can branch on (also in docs/protocol.md).
enum Exit {
    static let refused: Int32 = 1        // the daemon answered ok: false
    static let usage: Int32 = 64         // bad arguments (ArgumentParser's own code)
    static let dataError: Int32 = 65     // an input file that cannot be read or is not JSON
    static let unreachable: Int32 = 69   // no daemon on the socket
    static let failure: Int32 = 70       // the conversation broke off
}

@main
struct Ballotctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ballotctl",
        abstract: "Talk to ballotd over its Unix socket, or over TCP with mutual TLS (--connect tls://HOST:PORT --tls-cert --tls-key --tls-ca).",
        discussion: "Exit codes: 0 done; 1 the daemon refused (its error code is printed); 64 usage; 65 unreadable input file; 69 no daemon on the socket; 70 the connection failed.",
        subcommands: [Hello.self, Status.self, ElectionCommand.self, NomineeCommand.self, VoteCommand.self, Receipt.self,
                      JurorCommand.self, JuryCommand.self, ResultCommand.self, Tally.self, Ranking.self, Events.self,
                      Subscribe.self, Checkpoint.self, Proof.self, Backup.self, Metrics.self, Send.self,
                      Import.self, Publish.self, Outcomes.self, Generate.self])

    /// `ballotctl --socket PATH --json tally ID` works as well as `ballotctl tally ID --socket PATH
    /// --json`: the shared options are moved behind the subcommand before parsing.
    static func main() {
        main(hoistingSharedOptions(Array(CommandLine.arguments.dropFirst())))
    }

    static func hoistingSharedOptions(_ arguments: [String]) -> [String] {
        var leading: [String] = []
        var rest = arguments[...]
        let valued = ["--socket", "--connect", "--tls-cert", "--tls-key", "--tls-ca"]
        while let first = rest.first {
            if first == "--json" || valued.contains(where: { first.hasPrefix($0 + "=") }) {
                leading.append(first)
                rest = rest.dropFirst()
            } else if valued.contains(first), rest.count >= 2 {
                leading += rest.prefix(2)
                rest = rest.dropFirst(2)
            } else {
                break
            }
        }
        return Array(rest) + leading
    }
}

/// Where and how to talk: shared by every subcommand.
struct Connection: ParsableArguments {
    @Option(name: .long, help: "The daemon's socket (default: $BALLOTD_SOCKET, else /run/ballotledger/ballotd.sock).")
    var socket: String?

    @Flag(name: .long, help: "Print the reply's result as one line of JSON, for scripts.")
    var json = false

    @Option(name: .long, help: "tls://HOST:PORT: talk to the daemon's TLS listener (listen_tls) instead of its socket, with --tls-cert, --tls-key and --tls-ca.")
    var connect: String?

    // Named tls-*: `--key` is a juror's signing key (`jury score --key`).
    @Option(name: .customLong("tls-cert"), help: "With --connect: this client's certificate (PEM), which the daemon maps to a role.")
    var cert: String?

    @Option(name: .customLong("tls-key"), help: "With --connect: this client's private key (PEM).")
    var key: String?

    @Option(name: .customLong("tls-ca"), help: "With --connect: the CA that signed the daemon's certificate (PEM).")
    var ca: String?

    var socketPath: String {
        socket ?? ProcessInfo.processInfo.environment["BALLOTD_SOCKET"] ?? "/run/ballotledger/ballotd.sock"
    }

    /// A client on the socket, or on the TLS listener with `--connect`; `timeout` seconds for a
    /// reply (0: none).
    func client(timeout: Int = 60) throws -> BallotClient {
        do {
            guard let connect else { return try BallotClient(socketPath: socketPath, timeout: timeout) }
            guard let (host, port) = TLSEndpoint.address(connect) else {
                throw ValidationError("--connect is '\(connect)'; write tls://HOST:PORT")
            }
            guard let cert, let key, let ca else { throw ValidationError("--connect needs --tls-cert, --tls-key and --tls-ca") }
            return try BallotClient(tls: TLSEndpoint(host: host, port: port, certificateFile: cert, privateKeyFile: key, caFile: ca), timeout: timeout)
        } catch let error as ClientError {
            throw Self.exit(for: error)
        }
    }

    /// Sends `op` and prints its result; exits non-zero unless it was ok. Returns the result.
    /// `timeout`: seconds to wait for the reply.
    @discardableResult
    func send(_ op: Op, idempotencyKey: String? = nil, timeout: Int = 60, human: ((JSONValue) -> String)? = nil) throws -> JSONValue {
        let result = try ask(op, idempotencyKey: idempotencyKey, timeout: timeout)
        print(json ? result.text : (human ?? Self.describe)(result))
        return result
    }

    /// Sends `op` and returns its result without printing it; a refusal is reported and exits
    /// as `send` does.
    func ask(_ op: Op, idempotencyKey: String? = nil, timeout: Int = 60) throws -> JSONValue {
        do {
            return try client(timeout: timeout).document(op, idempotencyKey: idempotencyKey)
        } catch ClientError.refused(let error) {
            throw refused(error)
        } catch let error as ClientError {
            throw Self.exit(for: error)
        }
    }

    /// Sends `op` and reads its result as `R`, exiting as `ask` does.
    func ask<R: OpResult>(_ op: Op, as type: R.Type) throws -> R {
        do {
            return try R(json: try ask(op))
        } catch let error as ProtocolError {
            throw Self.exit(for: .protocolViolation(error.message))
        }
    }

    /// Reports a refusal (the daemon's, or one made here before asking, such as an id that is
    /// not an identifier) as the daemon's are reported, and gives the exit code.
    func refused(_ error: ProtocolError) -> ExitCode {
        if json { print(JSONValue.object([("code", .string(error.code.rawValue)), ("message", .string(error.message))]).text) }
        FileHandle.standardError.write(Data("ballotctl: \(error.code.rawValue): \(error.message)\n".utf8))
        return ExitCode(Exit.refused)
    }

    /// An identifier given on the command line (an election, a nominee), checked as the daemon
    /// checks it; one that is not is refused as the daemon would refuse it.
    func slug(_ text: String, _ what: String) throws -> Slug {
        do {
            return try Slug(text, what: what)
        } catch {
            throw refused(error)
        }
    }

    /// A value the daemon would refuse, refused here as it would refuse it (`bad_request`,
    /// exit 1), since the typed request cannot carry it.
    func badRequest(_ message: String) -> ExitCode { refused(ProtocolError(.badRequest, message)) }

    /// A sequence number given on the command line: 1 or more.
    func sequence(_ n: Int, _ what: String) throws -> UInt64 {
        guard n >= 1 else { throw badRequest("\(what) must be a sequence number (1 or more), not \(n)") }
        return UInt64(n)
    }

    /// Writes `text` (a note, a receipt) to `path`; exits with what is wrong when there is none
    /// or it cannot be written.
    static func save(_ text: String?, to path: String, option: String, missing: String) throws {
        guard let text else {
            FileHandle.standardError.write(Data("ballotctl: \(option): \(missing)\n".utf8))
            throw ExitCode(Exit.refused)
        }
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        } catch {
            FileHandle.standardError.write(Data("ballotctl: \(option): cannot write \(path): \(error.localizedDescription)\n".utf8))
            throw ExitCode(Exit.failure)
        }
    }

    /// Reports a failure to talk to the daemon and gives its exit code: 69 when no daemon
    /// answers, 70 when the conversation broke off.
    static func exit(for error: ClientError) -> ExitCode {
        FileHandle.standardError.write(Data("ballotctl: \(error)\n".utf8))
        if case .unreachable = error { return ExitCode(Exit.unreachable) }
        return ExitCode(Exit.failure)
    }

    /// `key: value` lines, keys sorted, nested values as JSON.
    static func describe(_ result: JSONValue) -> String {
        guard let members = result.members else { return result.text }
        return members.sorted { $0.0 < $1.0 }.map { key, value in "\(key): \(Tables.text(value))" }.joined(separator: "\n")
    }
}

struct Hello: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Protocol and server version, and the role the daemon gives you.")
    @OptionGroup var connection: Connection
    func run() throws { try connection.send(.hello) }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Ledger size, Merkle root, number of elections.")
    @OptionGroup var connection: Connection
    func run() throws { try connection.send(.status) }
}

struct Tally: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Votes and share per nominee (sealed while voting is open).")
    @OptionGroup var connection: Connection
    @Argument(help: "The election id.") var election: String
    func run() throws { try connection.send(.tally(connection.slug(election, "election")), human: Tables.tally) }
}

struct Ranking: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The combined ranking with every input (sealed while voting is open).")
    @OptionGroup var connection: Connection
    @Argument(help: "The election id.") var election: String
    func run() throws { try connection.send(.ranking(connection.slug(election, "election")), human: Tables.ranking) }
}

struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Events from the ledger, decoded.")
    @OptionGroup var connection: Connection
    @Option(help: "The first sequence number.") var from = 1
    @Option(help: "How many events at most (1 to 10000).") var limit = 100
    func validate() throws {
        guard from >= 1, (1...10_000).contains(limit) else { throw ValidationError("--from must be 1 or more and --limit from 1 to 10000") }
    }
    func run() throws {
        try connection.send(.events(from: UInt64(from), limit: limit)) { result in
            (result["events"]?.arrayValue ?? []).map(\.text).joined(separator: "\n")
        }
    }
}

struct Send: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send request lines from standard input over one connection and print each reply line.",
        discussion: "For scripts: each input line is one request object (see docs/protocol.md). Prints a summary on stderr; exits 1 if any request was refused.")
    @OptionGroup var connection: Connection
    @Flag(name: .long, help: "Print only the summary, not each reply.") var quiet = false

    func run() throws {
        let client = try connection.client()
        var counts = (ok: 0, repeated: 0, refused: [String: Int]())
        while let line = readLine(strippingNewline: true) {
            if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            let reply: ReplyLine
            do {
                try client.send(line)
                guard let r = try client.readReply() else { throw ClientError.connection("the daemon closed the connection") }
                reply = r
            } catch let error as ClientError {
                throw Connection.exit(for: error)
            }
            switch reply {
            case .ok(_, let result): if result["repeated"]?.boolValue == true { counts.repeated += 1 } else { counts.ok += 1 }
            case .refused(_, let error): counts.refused[error.code.rawValue, default: 0] += 1
            case .streamed: break
            }
            if !quiet { print(reply.json.text) }
        }
        let refused = counts.refused.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        FileHandle.standardError.write(Data("sent \(counts.ok + counts.repeated + counts.refused.values.reduce(0, +)): \(counts.ok) done, \(counts.repeated) already present, \(refused.isEmpty ? "none refused" : "refused: \(refused)")\n".utf8))
        if !counts.refused.isEmpty { throw ExitCode(Exit.refused) }
    }
}

struct Metrics: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The daemon's metrics, in the Prometheus text format.")
    @OptionGroup var connection: Connection
    func run() throws {
        try connection.send(.metrics) { result in (result["text"]?.stringValue ?? "").trimmingCharacters(in: .newlines) }
    }
}

struct Subscribe: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print events as they are committed (from --from, catching up first), one JSON line each, until interrupted.")
    @OptionGroup var connection: Connection
    @Option(help: "The first sequence number.") var from = 1
    func run() throws {
        do {
            let client = try connection.client(timeout: 0)
            let reply = try client.call(.subscribe(from: connection.sequence(from, "subscribe: --from")))
            if let refusal = reply.refusal { throw connection.refused(refusal) }
            while let event = try client.readReply() { print(event.json.text) }
        } catch let error as ClientError {
            throw Connection.exit(for: error)
        }
    }
}

struct Receipt: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Save an event's receipt as a c2sp.org/tlog-proof file (admin, importer).",
        discussion: "The receipt holds the event's record, its inclusion proof and a checkpoint covering it, with the witnesses' cosignatures when the daemon has a witness policy. Anyone checks it offline with 'ballot-replay receipt FILE'.")
    @OptionGroup var connection: Connection
    @Option(help: "The event's sequence number.") var seq: Int
    @Option(help: "Where to write the receipt (.tlog-proof).") var out: String
    @Option(help: "Seconds to wait for a checkpoint covering the event (default 0).") var wait: Int = 0
    func run() throws {
        let result = try connection.send(.receipt(seq: try connection.sequence(seq, "receipt: --seq"), wait: wait), timeout: max(wait, 0) + 60,
                                         human: { "receipt of event \(Tables.text($0["seq"])) against a checkpoint of \(Tables.text($0["checkpoint_size"])) events" })
        try Connection.save((try? ReceiptResult(json: result))?.tlogProof, to: out, option: "--out", missing: "the reply holds no receipt")
    }
}

struct Checkpoint: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sign and record a checkpoint of the ledger (admin), or show the latest one (--latest).",
        discussion: "A checkpoint records the ledger's size, Merkle root and every election's published numbers; the daemon signs its size and root with Ed25519 as a C2SP note (--note saves it). Auditors check it with ballot-replay.")
    @OptionGroup var connection: Connection
    @Flag(help: "Show the last checkpoint recorded and the current head; record nothing.") var latest = false
    @Option(help: ArgumentHelp("Also write the checkpoint as a C2SP signed note to FILE: what Go's sumdb/note, witnesses and monitors read.",
                               valueName: "FILE")) var note: String?
    func run() throws {
        let result = try connection.send(.checkpoint(latest: latest), human: Self.describe)
        guard let note else { return }
        try Connection.save(result["checkpoint"]?["note"]?.stringValue, to: note, option: "--note",
                            missing: "the checkpoint has no note (there is none yet, or it is from before checkpoints were notes)")
    }

    /// The checkpoint as a person reads it: what it covers, then each election's digests.
    static func describe(_ result: JSONValue) -> String {
        var lines: [String] = []
        if let head = result["head"] {
            lines.append("ledger_size: \(Tables.text(head["ledger_size"]))")
            lines.append("merkle_root: \(Tables.text(head["merkle_root"]))")
        }
        guard let c = result["checkpoint"], c != .null, let seq = result["seq"] else {
            lines.append("checkpoint: none recorded yet")
            return lines.joined(separator: "\n")
        }
        lines.append("checkpoint: event \(Tables.text(seq)) (\(Tables.text(c["reason"])))")
        for key in ["size", "root", "taken_at", "origin", "public_key", "signature"] {
            lines.append("  \(key): \(Tables.text(c[key]))")
        }
        for e in c["elections"]?.arrayValue ?? [] {
            lines.append("  \(Tables.text(e["election"])): tally \(Tables.text(e["tally_sha256"])), jury \(Tables.text(e["jury_sha256"])), ranking \(Tables.text(e["ranking_sha256"]))")
        }
        return lines.joined(separator: "\n")
    }
}

struct Proof: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "An inclusion proof (--seq) or a consistency proof (--old-size) from the daemon.")
    @OptionGroup var connection: Connection
    @Option(help: "The event to prove included.") var seq: Int?
    @Option(help: "The tree size for --seq (default: the whole ledger).") var size: Int?
    @Option(help: "For --seq: prove it against the checkpoint recorded at this sequence number.") var checkpoint: Int?
    @Option(name: .customLong("old-size"), help: "The older tree size for a consistency proof.") var oldSize: Int?
    @Option(name: .customLong("new-size"), help: "The newer tree size (default: the whole ledger).") var newSize: Int?
    func validate() throws {
        guard (seq == nil) != (oldSize == nil) else { throw ValidationError("give either --seq or --old-size") }
    }
    func run() throws {
        if let seq {
            try connection.send(.inclusionProof(seq: connection.sequence(seq, "proof: --seq"), size: size.map { try connection.sequence($0, "proof: --size") },
                                                checkpoint: checkpoint.map { try connection.sequence($0, "proof: --checkpoint") }))
        } else if let oldSize {
            guard oldSize >= 0 else { throw connection.badRequest("proof: --old-size must not be negative") }
            try connection.send(.consistencyProof(oldSize: UInt64(oldSize), newSize: newSize.map { try connection.sequence($0, "proof: --new-size") }))
        }
    }
}

struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A hot, compacted copy of the ledger into DIR on the daemon's machine, with a manifest.")
    @OptionGroup var connection: Connection
    @Argument(help: "An absolute directory path, absent or empty.") var directory: String
    func run() throws {
        let absolute = directory.hasPrefix("/") ? directory : FileManager.default.currentDirectoryPath + "/" + directory
        try connection.send(.backup(directory: absolute))
    }
}
