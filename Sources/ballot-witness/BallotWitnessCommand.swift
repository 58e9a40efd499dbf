import ArgumentParser
import Foundation
import BallotDomain
import BallotFormat
import BallotWitness

/// `ballot-witness`: a transparency-log witness that an independent party runs (c2sp.org/
/// tlog-witness), with its own key and state file. It cosigns a log's checkpoint only when it
/// extends the last one it cosigned for that log.
@main
struct BallotWitnessCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ballot-witness",
        abstract: "A transparency-log witness (c2sp.org/tlog-witness): cosigns a log's checkpoints, never a rollback or a fork.",
        subcommands: [Serve.self, Keygen.self])
}

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Make the witness's Ed25519 key (the seed in hex, mode 0600) and print its verifier key.")
    @Option(help: "Where to write the key; an existing file is never overwritten.") var out: String
    @Option(help: "The witness's name, a schema-less URL such as witness.example.org/w1.") var name: String

    func run() throws {
        let key = CheckpointKey()
        let seed = key.seed.map { String(format: "%02x", $0) }.joined()
        let fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ValidationError("cannot create \(out): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard write(fd, seed + "\n", seed.utf8.count + 1) == seed.utf8.count + 1 else { throw ValidationError("cannot write \(out)") }
        let witness = try Witness(name: name, key: key, logs: [], state: WitnessState())
        print("public_key: \(key.publicKey.hex)")
        print("vkey: \(witness.verifierKey)")
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve POST /add-checkpoint until stopped.")
    @Option(help: "The witness's name (its cosignatures' key name).") var name: String
    @Option(help: "The witness's key file (from keygen).") var key: String
    @Option(help: "The witness's state file: the latest checkpoint it cosigned for each log.") var state: String
    @Option(help: "HOST:PORT to listen on (port 0: any free port, printed).") var listen: String = "127.0.0.1:0"
    @Option(help: ArgumentHelp("A log to witness: its origin and public key (64 hex digits). Repeat for more.", valueName: "ORIGIN=PUBKEY"))
    var log: [String] = []

    func run() async throws {
        let text = (try? String(contentsOfFile: key, encoding: .utf8)) ?? ""
        guard let seed = Digest32(hex: text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw ValidationError("the key file \(key) is not 64 hex digits (make one with ballot-witness keygen)")
        }
        let logs = try log.map { entry -> WitnessedLog in
            let parts = entry.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let publicKey = Digest32(hex: String(parts[1])) else {
                throw ValidationError("--log \(entry): write ORIGIN=PUBKEY, the key in 64 hex digits")
            }
            return WitnessedLog(origin: String(parts[0]), publicKey: publicKey)
        }
        let hostPort = listen.split(separator: ":")
        guard hostPort.count == 2, let port = Int(hostPort[1]) else { throw ValidationError("--listen \(listen): write HOST:PORT") }
        let stateFile = WitnessStateFile(path: state)
        let witness = try Witness(name: name, key: try seed.withBytes { try CheckpointKey(seed: Array($0)) }, logs: logs, state: try stateFile.read())
        let server = WitnessServer(witness: witness, stateFile: stateFile)
        let bound = try await server.start(host: String(hostPort[0]), port: port)
        // Whole, and at once: a script that started the witness reads the port from this line.
        FileHandle.standardOutput.write(Data("listening on \(hostPort[0]):\(bound) as \(witness.verifierKey)\n".utf8))
        while true { try await Task.sleep(for: .seconds(3600)) }
    }
}
