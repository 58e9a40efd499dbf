import ArgumentParser
import BallotDomain
import BallotFormat
import BallotProtocol
import Foundation

extension JuryCommand {
    struct Keygen: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a juror's own Ed25519 key: the private key to --out (mode 0600), its verifier key (for juror add --key) on stdout.")
        @Option(help: "The file to write the private key to; it must not exist.") var out: String
        @Option(help: "The key's name, which signatures carry (default: the file's name without extension).") var name: String?
        func run() throws {
            let keyName = name ?? ((out as NSString).lastPathComponent as NSString).deletingPathExtension
            let signer: SignerKey
            do {
                signer = try SignerKey(name: keyName)
            } catch {
                throw ValidationError("--name: \(error)")
            }
            guard FileManager.default.createFile(atPath: out, contents: Data((signer.description + "\n").utf8),
                                                 attributes: [.posixPermissions: 0o600]) else {
                throw ValidationError("--out: cannot write \(out)")
            }
            print(signer.verifierKey.description)
        }

        func validate() throws {
            if FileManager.default.fileExists(atPath: out) { throw ValidationError("--out: \(out) exists; a key is never overwritten") }
        }
    }
}

/// What `ballotctl` does for a juror's signatures: reads keys, asks the daemon what a statement
/// must name, and signs (the statements are BallotFormat's `JuryStatement`, the daemon's own).
enum JurorSigning {
    /// A juror's private key file.
    static func signer(_ path: String) throws -> SignerKey {
        let text = try self.text(path)
        do {
            return try SignerKey(parsing: text)
        } catch {
            throw ValidationError("--key \(path): \(error)")
        }
    }

    /// A verifier key given as itself or as a file holding it.
    static func verifierKey(_ given: String) throws -> String {
        let text = FileManager.default.fileExists(atPath: given) ? try self.text(given) : given
        let vkey = text.split(whereSeparator: \.isWhitespace).first.map(String.init) ?? ""
        do {
            return try VerifierKey(parsing: vkey).description
        } catch {
            throw ValidationError("--key: \(error)")
        }
    }

    static func text(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ValidationError("cannot read \(path) as UTF-8 text")
        }
        return text
    }

    /// The event of the juror's current score in that cell, or 0: what a new signed score supersedes.
    static func currentScoreEvent(_ connection: Connection, election: Slug, juror: Slug, nominee: Slug, criterion: Slug) throws -> Int {
        let table = try connection.ask(.jury(election))
        let row = (table["nominees"]?.arrayValue ?? []).first { $0["nominee"]?.stringValue == nominee.value }
        let cell = (row?["criteria"]?.arrayValue ?? []).first { $0["criterion"]?.stringValue == criterion.value }
        return Int(cell?["events"]?[juror.value]?.intValue ?? 0)
    }

    /// The id of the daemon's ledger, which every statement names (from `status`).
    static func ledgerID(_ connection: Connection) throws -> [UInt8] {
        let status = try connection.ask(.status, as: StatusResult.self)
        let hex = Array(status.ledgerID.utf8)
        let id = stride(from: 0, to: hex.count, by: 2).compactMap { i in i + 1 < hex.count ? UInt8(String(decoding: hex[i...i + 1], as: UTF8.self), radix: 16) : nil }
        guard hex.count == 32, id.count == 16 else {
            throw ValidationError("the daemon's status has no ledger_id (is it older than jurors' signatures?)")
        }
        return id
    }

    /// The signature of a score.
    static func signScore(_ signer: SignerKey, ledger: [UInt8], election: Slug, juror: Slug, nominee: Slug, criterion: Slug,
                          score: Int32, supersedes: UInt64?) -> SentSignature {
        let statement = JuryStatement.score(JuryScore(election: election, juror: juror, nominee: nominee, criterion: criterion, score: score,
                                                      supersedes: supersedes), ledger: ledger)
        return sent(signer.sign(statement))
    }

    /// The co-signature of the result awaiting the jury, which is printed on stderr first.
    static func signProposal(_ signer: SignerKey, _ connection: Connection, election: Slug) throws -> SentSignature {
        let ranking = try connection.ask(.ranking(election))
        guard let proposed = ranking["proposed"], let winner = proposed["winner"]?.stringValue,
              let seq = proposed["event"]?.intValue, seq > 0,
              let order = proposed["ranking"]?.arrayValue?.compactMap(\.stringValue), let justification = proposed["justification"]?.stringValue else {
            FileHandle.standardError.write(Data("ballotctl: no result of '\(election)' awaits the jury's co-signatures (result certify puts it to them)\n".utf8))
            throw ExitCode(Exit.refused)
        }
        let statement = JuryStatement.result(ledger: try ledgerID(connection), proposal: UInt64(seq), election: election,
                                             winner: try named(winner), ranking: try order.map(named), justification: justification)
        // What the juror is about to sign, with any control character shown, not obeyed: an
        // escape sequence in the text must not rewrite what their terminal shows.
        let shown = "ballotctl: co-signing the result of \(election) proposed at event \(seq): winner \(winner); ranking \(order.joined(separator: ", "))\njustification:\n\(justification)\n\nstatement:\n\(statement)"
        FileHandle.standardError.write(Data(visible(shown).utf8))
        return sent(signer.sign(statement))
    }

    /// `text` with every control character but newline and tab written as `\u{…}`.
    static func visible(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            if scalar.isControlCharacter && scalar != "\n" && scalar != "\t" {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// A nominee the daemon's ranking names.
    private static func named(_ text: String) throws -> Slug {
        do {
            return try Slug(text, what: "the ranking's nominee")
        } catch {
            throw Connection.exit(for: .protocolViolation(error.message))
        }
    }

    private static func sent(_ signature: SignedNote.Signature) -> SentSignature {
        SentSignature(keyID: signature.keyID, bytes: signature.bytes)
    }
}
