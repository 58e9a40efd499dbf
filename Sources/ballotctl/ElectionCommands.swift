import ArgumentParser
import BallotConfig
import BallotDomain
import BallotProtocol
import Foundation

struct ElectionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "election", abstract: "Define, inspect, open and close elections.",
        subcommands: [Define.self, Get.self, Open.self, Close.self])

    struct Define: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Define an election, with its nominees and jurors, from a data file (config/elections/*.json).")
        @OptionGroup var connection: Connection
        @Argument(help: "The election's JSON data file.") var file: String
        @Option(help: "An idempotency key, so that running the command again adds nothing.") var key: String?
        func run() throws {
            guard let data = FileManager.default.contents(atPath: file) else {
                FileHandle.standardError.write(Data("ballotctl: cannot read \(file)\n".utf8))
                throw ExitCode(Exit.dataError)
            }
            guard case .object? = try? JSONParser.parse(String(decoding: data, as: UTF8.self)) else {
                FileHandle.standardError.write(Data("ballotctl: \(file) is not a JSON object\n".utf8))
                throw ExitCode(Exit.dataError)
            }
            let spec: ElectionSpec
            do {
                spec = try ElectionSpec.decode(Array(data), source: file)
            } catch {
                throw connection.badRequest("election.define: \(error)")
            }
            try connection.send(.electionDefine(spec), idempotencyKey: key) { result in "defined with \(result["events"]?.arrayValue?.count ?? 0) events" }
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "An election's definition and where it stands (turnout included).")
        @OptionGroup var connection: Connection
        @Argument(help: "The election id.") var election: String
        func run() throws { try connection.send(.electionGet(connection.slug(election, "election"))) }
    }

    struct Open: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Open the public vote now (only before any vote).")
        @OptionGroup var connection: Connection
        @Argument(help: "The election id.") var election: String
        func run() throws { try connection.send(.electionOpen(connection.slug(election, "election")), human: Tables.receipt) }
    }

    struct Close: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Close the public vote now.")
        @OptionGroup var connection: Connection
        @Argument(help: "The election id.") var election: String
        func run() throws { try connection.send(.electionClose(connection.slug(election, "election")), human: Tables.receipt) }
    }
}

struct NomineeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "nominee", abstract: "Nominate.", subcommands: [Add.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Nominate a municipality (refused below the entry criterion).")
        @OptionGroup var connection: Connection
        @Argument(help: "The election id.") var election: String
        @Argument(help: "The nominee id (a-z, 0-9, -, _, .).") var nominee: String
        @Option(help: "The name people read.") var name: String
        @Option(name: .customLong("goal-direct"), help: "Goal attainment directly after the programme, in percent.") var direct: Double
        @Option(name: .customLong("goal-after-one-year"), help: "Goal attainment one year after, in percent.") var afterOneYear: Double
        func run() throws {
            try connection.send(.nomineeAdd(connection.slug(election, "election"), Nomination(
                id: connection.slug(nominee, "nominee"), name: name, goalAttainmentDirect: direct, goalAttainmentAfterOneYear: afterOneYear)))
        }
    }
}

struct VoteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vote", abstract: "Cast and invalidate votes.", subcommands: [Cast.self, Invalidate.self])

    struct Cast: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cast one vote.")
        @OptionGroup var connection: Connection
        @Argument(help: "The election id.") var election: String
        @Argument(help: "The nominee id.") var nominee: String
        @Option(help: "The voter's identifier (hashed by the daemon, never stored).") var voter: String
        @Option(name: .customLong("cast-at"), help: "When the voter voted, RFC 3339 (default: now).") var castAt: String?
        @Option(help: "Where the vote came from (web, sms, paper, ...).") var channel: String?
        @Option(help: "An idempotency key (an import's vote_id).") var key: String?
        @Option(help: ArgumentHelp("Also save the vote's receipt as a c2sp.org/tlog-proof file, once a checkpoint covers it (see 'ballotctl receipt').",
                                   valueName: "FILE")) var receipt: String?
        @Option(name: .customLong("receipt-wait"), help: "Seconds to wait for that checkpoint (default 0: one must cover the vote already).")
        var receiptWait: Int = 0
        func run() throws {
            var time: Timestamp?
            if let castAt {
                guard let t = Timestamp(rfc3339: castAt) else { throw connection.badRequest("vote.cast: field 'cast_at' ('\(castAt)') is not an RFC 3339 time") }
                time = t
            }
            let vote = Op.voteCast(election: try connection.slug(election, "election"), nominee: try connection.slug(nominee, "nominee"),
                                   voter: voter, castAt: time, channel: channel ?? "")
            let result = try connection.send(vote, idempotencyKey: key, human: Tables.receipt)
            guard let receipt, let seq = (try? WriteReceipt(json: result))?.seq else { return }
            let proof = try connection.send(.receipt(seq: seq, wait: receiptWait), timeout: max(receiptWait, 0) + 60,
                                            human: { "receipt: against a checkpoint of \(Tables.text($0["checkpoint_size"])) events" })
            try Connection.save((try? ReceiptResult(json: proof))?.tlogProof, to: receipt, option: "--receipt", missing: "the reply holds no receipt")
        }
    }

    struct Invalidate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Take a vote out of the count, with a reason.")
        @OptionGroup var connection: Connection
        @Argument(help: "The election id.") var election: String
        @Argument(help: "The vote's sequence number.") var vote: Int
        @Option(help: "Why.") var reason: String
        func run() throws {
            try connection.send(.voteInvalidate(election: connection.slug(election, "election"), vote: connection.sequence(vote, "vote.invalidate: VOTE"), reason: reason),
                                human: Tables.receipt)
        }
    }
}

struct JurorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "juror", abstract: "Register jurors.", subcommands: [Add.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a juror.")
        @OptionGroup var connection: Connection
        @Argument(help: "The election id.") var election: String
        @Argument(help: "The juror id.") var juror: String
        @Option(help: "The juror's name.") var name: String
        @Option(help: "The juror's own verifier key (the vkey `ballotctl jury keygen` prints), or a file holding it; required where the election asks for signatures.")
        var key: String?
        func run() throws {
            try connection.send(.jurorAdd(election: connection.slug(election, "election"), juror: connection.slug(juror, "juror"), name: name,
                                          key: try key.map(JurorSigning.verifierKey)), human: Tables.receipt)
        }
    }
}

struct JuryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "jury", abstract: "Score and close the jury; make a juror's key.",
                                                    subcommands: [Score.self, Close.self, Keygen.self])

    struct Score: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Score a nominee on a criterion (again to amend).")
        @OptionGroup var connection: Connection
        @Argument(help: "The election id.") var election: String
        @Argument(help: "The nominee id.") var nominee: String
        @Argument(help: "The criterion id.") var criterion: String
        @Argument(help: "The score, on the election's scale.") var score: Int
        @Option(help: "The juror (a juror's own uid implies it; needed with --key).") var juror: String?
        @Option(help: "Sign the score with the juror's key file (from jury keygen).") var key: String?
        @Option(help: "With --key: the event of the score this one supersedes (0: none); asked of the daemon when not given.")
        var supersedes: Int?
        func run() throws {
            guard let score32 = Int32(exactly: score) else { throw connection.badRequest("jury.score: field 'score' (\(score)) is out of range") }
            let (e, n, c) = (try connection.slug(election, "election"), try connection.slug(nominee, "nominee"), try connection.slug(criterion, "criterion"))
            let j = try juror.map { try connection.slug($0, "juror") }
            var signed: SignedScore?
            if let key {
                guard let j else { throw ValidationError("--key needs --juror: the signed statement names the juror") }
                if let supersedes, supersedes < 0 { throw connection.badRequest("jury.score: --supersedes must be a sequence number, or 0 for a first score") }
                let signer = try JurorSigning.signer(key)
                let previous = try supersedes ?? JurorSigning.currentScoreEvent(connection, election: e, juror: j, nominee: n, criterion: c)
                let after = previous > 0 ? UInt64(previous) : nil
                signed = SignedScore(supersedes: after, signature: JurorSigning.signScore(
                    signer, ledger: try JurorSigning.ledgerID(connection), election: e, juror: j, nominee: n, criterion: c, score: score32, supersedes: after))
            }
            try connection.send(.juryScore(election: e, juror: j, nominee: n, criterion: c, score: score32, signed: signed), human: Tables.receipt)
        }
    }

    struct Close: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Close the jury: no more scores.")
        @OptionGroup var connection: Connection
        @Argument(help: "The election id.") var election: String
        func run() throws { try connection.send(.juryClose(connection.slug(election, "election")), human: Tables.receipt) }
    }
}

struct ResultCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "result", abstract: "Certify the result; co-sign it as a juror.",
                                                    subcommands: [Certify.self, Sign.self])

    struct Certify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Certify the result; seals the election. With a jury quorum, puts it to the jury, whose last co-signature certifies it.")
        @OptionGroup var connection: Connection
        @Argument(help: "The election id.") var election: String
        @Option(help: "A file with the jury's written justification (UTF-8); required with a jury quorum.") var justification: String?
        func run() throws {
            try connection.send(.resultCertify(connection.slug(election, "election"), justification: try justification.map(JurorSigning.text) ?? ""),
                                human: Tables.receipt)
        }
    }

    struct Sign: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Co-sign, as a juror, the result put to the jury: its winner, ranking and justification (printed on stderr first).")
        @OptionGroup var connection: Connection
        @Argument(help: "The election id.") var election: String
        @Option(help: "The juror co-signing.") var juror: String
        @Option(help: "The juror's key file (from jury keygen).") var key: String
        func run() throws {
            let signer = try JurorSigning.signer(key)
            let signature = try JurorSigning.signProposal(signer, connection, election: connection.slug(election, "election"))
            try connection.send(.resultSign(election: connection.slug(election, "election"), juror: connection.slug(juror, "juror"), signature: signature),
                                human: Tables.receipt)
        }
    }
}
