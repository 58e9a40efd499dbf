import ArgumentParser
import BallotNATS
import Foundation

/// `ballotctl publish FILE...`: publishes each row of NDJSON vote files to NATS JetStream as a
/// front end would (docs/intake.md): one message per row on `<subject>.<election>`, its
/// `Nats-Msg-Id` the row's `vote_id`. For rehearsals, load tests and the crash test; ballotd's
/// intake decides each, and publishes the outcome.
struct Publish: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish the rows of NDJSON vote files to NATS JetStream, as a front end would.",
        discussion: """
        Each row becomes one message with its vote_id as Nats-Msg-Id, so JetStream drops a row \
        published twice within its duplicate window. Rows are sent in groups; a group JetStream \
        did not store whole is sent again, until --timeout. A row without vote_id, or without \
        an election (in the row or from --election), is listed and skipped. Exits 0 when every \
        row is stored, 65 when rows were skipped or a file cannot be read, 69 when JetStream \
        did not store them within --timeout.
        """)
    @Argument(help: "NDJSON vote files (docs/import.md's row format).") var files: [String]
    @Option(help: "The NATS server, nats://HOST:PORT.") var nats = "nats://127.0.0.1:4222"
    @Option(help: "The votes' subject prefix: a row goes to <subject>.<election>.") var subject = "ballot.votes"
    @Option(help: "The election of rows that name none.") var election: String?
    @Option(help: "Append the vote_id of each row JetStream stored to this file, as it is stored.") var published: String?
    @Option(help: "Give up after this many seconds without JetStream storing a group.") var timeout = 30
    @Option(help: "Publish at most this many votes a second (0: as fast as JetStream stores them).") var rate = 0
    @Flag(help: "The summary only.") var quiet = false

    func validate() throws {
        guard rate >= 0 else { throw ValidationError("--rate must be 0 or more") }
        guard timeout > 0 else { throw ValidationError("--timeout must be a positive number of seconds") }
    }

    /// Rows sent before waiting for JetStream to store them: a tenth of a second's worth when paced.
    var group: Int { rate > 0 ? min(512, max(1, rate / 10)) : 512 }

    func run() throws {
        let js: JetStream
        do {
            js = try NATSConnection(url: nats, name: "ballotctl-publish", waitForServer: false).jetStream()
        } catch {
            FileHandle.standardError.write(Data("ballotctl: \(error)\n".utf8))
            throw ExitCode(Exit.unreachable)
        }
        let log = try published.map { path -> FileHandle in
            if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
            guard let h = FileHandle(forWritingAtPath: path) else { throw ValidationError("--published: cannot write \(path)") }
            h.seekToEndOfFile()
            return h
        }
        var stored = 0
        var skipped = 0
        let started = Date()
        /// Waits until `stored` votes are due at `rate`.
        func pace() {
            guard rate > 0 else { return }
            let due = started.addingTimeInterval(Double(stored) / Double(rate))
            if due > Date() { Thread.sleep(until: due) }
        }
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else {
                FileHandle.standardError.write(Data("ballotctl: \(file): not a readable file\n".utf8))
                throw ExitCode(Exit.dataError)
            }
            var batch: [(subject: String, row: [UInt8], voteID: String)] = []
            for (n, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
                let row = Array(line)
                guard !row.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) else { continue }
                let object = try? JSONSerialization.jsonObject(with: Data(row)) as? [String: Any]
                guard let voteID = object?["vote_id"] as? String ?? (object?["vote_id"] as? Int).map(String.init), !voteID.isEmpty else {
                    FileHandle.standardError.write(Data("ballotctl: \(file):\(n + 1): skipped: no vote_id\n".utf8))
                    skipped += 1
                    continue
                }
                guard let rowElection = object?["election"] as? String ?? election, !rowElection.isEmpty else {
                    FileHandle.standardError.write(Data("ballotctl: \(file):\(n + 1): skipped: no election (give --election)\n".utf8))
                    skipped += 1
                    continue
                }
                batch.append(("\(subject).\(rowElection)", row, voteID))
                if batch.count == group {
                    pace()
                    try send(batch, js, log)
                    stored += batch.count
                    batch.removeAll(keepingCapacity: true)
                }
            }
            if !batch.isEmpty {
                try send(batch, js, log)
                stored += batch.count
            }
        }
        if !quiet { print("published \(stored) votes\(skipped > 0 ? ", skipped \(skipped) rows" : "")") }
        if skipped > 0 { throw ExitCode(Exit.dataError) }
    }

    /// Sends one group until JetStream stores all of it (a repeat of a stored row is dropped).
    private func send(_ batch: [(subject: String, row: [UInt8], voteID: String)], _ js: JetStream, _ log: FileHandle?) throws {
        let deadline = Date().addingTimeInterval(Double(timeout))
        var lastError = ""
        while Date() < deadline {
            do {
                for m in batch { try js.publishAsync(subject: m.subject, data: m.row, messageID: m.voteID) }
                if try js.publishAsyncComplete(timeoutMilliseconds: 5000) == 0 {
                    log?.write(Data(batch.map { $0.voteID + "\n" }.joined().utf8))
                    return
                }
                lastError = "JetStream did not store every message"
            } catch {
                lastError = "\(error)"
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        FileHandle.standardError.write(Data("ballotctl: JetStream did not store the votes within \(timeout) s: \(lastError)\n".utf8))
        throw ExitCode(Exit.unreachable)
    }
}
