import ArgumentParser
import BallotClient
import BallotConfig
import Foundation

/// `ballotctl generate`: a realistic vote file for tests and benchmarks, the same for the same
/// seed. Writes next to it (`--expect`) the counts an import must end with, worked out here
/// from what was generated, not by reading the file back.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a vote file: N votes over an election's nominees and window, with chosen shares of duplicate voters and malformed rows.")
    @Option(help: "The election's data file (config/elections/*.json): its id, nominees and voting window.") var electionFile: String
    @Option(help: "Number of rows.") var rows = 10_000
    @Option(help: "Share of rows that repeat an earlier voter under a new vote_id (refused as duplicate_vote).") var duplicates = 0.01
    @Option(help: "Share of rows that are malformed or break a rule (bad timestamp, unknown nominee, missing column, stray quote, outside the window).") var malformed = 0.001
    @Option(help: "Seed of the pseudo-random choices.") var seed: UInt64 = 1
    @Option(help: "csv or ndjson.") var format = "csv"
    @Option(help: "Output file.") var out: String
    @Option(help: "Write the expected counts here as JSON.") var expect: String?

    func validate() throws {
        guard ["csv", "ndjson"].contains(format) else { throw ValidationError("--format must be csv or ndjson") }
        guard (0...1).contains(duplicates + malformed) else { throw ValidationError("--duplicates plus --malformed must be a share from 0 to 1") }
    }

    func run() throws {
        guard let spec = try? ElectionSpec.load(path: electionFile),
              let opens = Self.parse(spec.votingWindow.opensAt), let closes = Self.parse(spec.votingWindow.closesAt),
              let nominees = spec.nominees?.map(\.id), !nominees.isEmpty else {
            FileHandle.standardError.write(Data("ballotctl: \(electionFile) is not an election data file with an id, a voting_window and nominees\n".utf8))
            throw ExitCode(Exit.dataError)
        }
        let election = spec.id
        guard FileManager.default.createFile(atPath: out, contents: nil), let handle = FileHandle(forWritingAtPath: out) else {
            FileHandle.standardError.write(Data("ballotctl: cannot write \(out)\n".utf8))
            throw ExitCode(Exit.dataError)
        }
        var random = SplitMix64(seed: seed)
        // Popularity falls off by nominee, as real votes do.
        let weights = nominees.indices.map { 1.0 / Double($0 + 1) }
        let total = weights.reduce(0, +)
        func nominee() -> String {
            var x = random.unit() * total
            for (i, w) in weights.enumerated() { x -= w; if x < 0 { return nominees[i] } }
            return nominees[nominees.count - 1]
        }
        let span = closes - opens
        func castAt() -> Double { opens + span * (1 - pow(random.unit(), 1.6)) }  // busier towards the close
        let channels = ["web", "web", "web", "sms", "paper"]

        var buffer = ""
        buffer.reserveCapacity(1 << 21)
        if format == "csv" { buffer += "vote_id,election,voter,nominee,cast_at,channel\n" }
        var accepted: [String: Int] = [:]
        var refused: [String: Int] = [:]
        var voters: [String] = []
        for i in 0..<rows {
            let channel = channels[Int(random.next() % UInt64(channels.count))]
            let id = "\(channel)-\(seed)-\(i)"
            var voter = channel == "sms" ? "+47 \(40_000_000 + i)" : "Voter.\(i)@example.no"
            var name = nominee()
            var time = Self.format(castAt())
            let roll = random.unit()
            var broken: String?
            var castAtLeftOut = false
            if roll < duplicates, let earlier = voters.isEmpty ? nil : voters[Int(random.next() % UInt64(voters.count))] {
                voter = earlier.uppercased()  // the same voter, as the hash normalises it
                refused["duplicate_vote", default: 0] += 1
            } else if roll < duplicates + malformed {
                switch random.next() % 5 {
                case 0: time = "03.11.2022 kl. 10"; broken = "bad_timestamp"
                case 1: name = "oslo"; broken = "unknown_nominee"
                case 2: time = Self.format(opens - 86_400); broken = "outside_window"
                case 3: castAtLeftOut = true; broken = format == "csv" ? "missing_column" : "missing_value"
                default: voter = "stray\"quote-\(i)"; broken = format == "csv" ? "bad_csv" : nil  // valid JSON
                }
                if let broken {
                    refused[broken, default: 0] += 1
                } else {
                    voters.append(voter)
                    accepted[name, default: 0] += 1
                }
            } else {
                voters.append(voter)
                accepted[name, default: 0] += 1
            }
            if format == "csv" {
                let quotedVoter = voter.contains(",") || voter.contains("\"") && broken != "bad_csv" ? "\"\(voter.replacingOccurrences(of: "\"", with: "\"\""))\"" : voter
                buffer += castAtLeftOut ? "\(id),\(election),\(quotedVoter),\(name)\n" : "\(id),\(election),\(quotedVoter),\(name),\(time),\(channel)\n"
            } else {
                var row: [String: String] = ["vote_id": id, "election": election, "voter": voter, "nominee": name, "cast_at": time, "channel": channel]
                if castAtLeftOut { row["cast_at"] = nil }
                buffer += Self.line(row) + "\n"
            }
            if buffer.utf8.count > 1 << 20 {
                handle.write(Data(buffer.utf8))
                buffer.removeAll(keepingCapacity: true)
            }
        }
        handle.write(Data(buffer.utf8))
        try handle.close()
        if let expect {
            let summary: [String: Any] = ["election": election, "rows": rows, "accepted": accepted.values.reduce(0, +),
                                          "votes": accepted, "refused": refused]
            try Data((Self.line(summary) + "\n").utf8).write(to: URL(fileURLWithPath: expect))
        }
    }

    /// One line of JSON, keys sorted: a generated NDJSON row or the expected summary.
    static func line(_ value: Any) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    static func parse(_ text: String) -> Double? { ISO8601DateFormatter().date(from: text)?.timeIntervalSince1970 }
    /// RFC 3339 in UTC, by hand: a formatter per row would cost more than the rest of a row.
    static func format(_ seconds: Double) -> String {
        var t = time_t(seconds.rounded(.down))
        var parts = tm()
        gmtime_r(&t, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                      parts.tm_hour, parts.tm_min, parts.tm_sec)
    }
}
