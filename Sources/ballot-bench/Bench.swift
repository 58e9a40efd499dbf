// Ledger append benchmark: N votes through the store and the domain (HMAC of the voter id,
// duplicate check, rules, record encoding, leaf hash, Merkle nodes, projections), in batches of
// B per durable transaction, into a fresh ledger. Prints one JSON line with the figures;
// scripts/bench-ledger runs it beside a bare C loop and reports medians.
import BallotDomain
import BallotLedger
import BallotFormat
import BallotAudit
import BallotStore
import Foundation

@main
struct Bench {
    static func main() throws {
        if CommandLine.arguments.dropFirst().first == "socket" {
            do {
                try SocketLoad.run(Array(CommandLine.arguments.dropFirst(2)))
            } catch {
                FileHandle.standardError.write(Data("usage: ballot-bench socket --socket PATH [--clients N] [--votes-per-client N] [--readers N] [--election ID]\n".utf8))
                exit(64)
            }
            return
        }
        // Subcommands with their own arguments: a usage error prints the subcommand's usage.
        let subcommands: [String: (usage: String, run: ([String]) throws -> Void)] = [
            "jury": (JuryBench.usage, JuryBench.run),
            "jetstream": (JetStreamBench.usage, JetStreamBench.run),
            "follow": (FollowBench.usage, FollowBench.run),
            "transport": (TransportBench.usage, TransportBench.run),
        ]
        if let name = CommandLine.arguments.dropFirst().first, let subcommand = subcommands[name] {
            do {
                try subcommand.run(Array(CommandLine.arguments.dropFirst(2)))
            } catch is Arguments.UsageError {
                FileHandle.standardError.write(Data((subcommand.usage + "\n").utf8))
                exit(64)
            }
            return
        }
        if CommandLine.arguments.dropFirst().first == "scan" {
            try scan(CommandLine.arguments.dropFirst(2).first ?? "")
            return
        }
        if CommandLine.arguments.dropFirst().first == "open" {
            try open(CommandLine.arguments.dropFirst(2).first ?? "")
            return
        }
        let options: Arguments
        do {
            options = try Arguments(Array(CommandLine.arguments.dropFirst()))
        } catch {
            FileHandle.standardError.write(Data((Arguments.usage + "\n").utf8))
            exit(64)
        }
        try? FileManager.default.removeItem(atPath: options.dir)
        var workload = try Workload(votes: options.votes, keys: options.keys)
        let key = CheckpointKey()
        if let file = options.checkpointKeyFile {
            try (key.seed.map { String(format: "%02x", $0) }.joined() + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        }
        let stalls = StallObserver()
        let ledger = try Ledger(path: options.dir, options: Ledger.Options(environment: EnvironmentOptions(durable: options.durable, observer: stalls),
                                                                   keepState: options.keepState),
                                clock: FixedClock(at: Workload.definition.closesAt),
                                checkpointKey: options.checkpoints ? key : nil)
        _ = try ledger.submit(workload.setUp)

        if options.phases {
            let t = ContinuousClock.now
            workload.prehashed = (0..<workload.count).map { workload.hasher.key(for: workload.row($0).voter) }
            FileHandle.standardError.write(Data("hmac only: \(seconds(since: t)) s for \(workload.count) voter ids\n".utf8))
        }
        let batches = stride(from: 0, to: workload.count, by: options.batch).map { $0..<min($0 + options.batch, workload.count) }
        let ready = BatchQueue()
        let start = ContinuousClock.now
        if options.pipelined {
            let input = workload
            Thread { for range in batches { ready.put(input.submissions(range)) } }.start()
        }
        var appended = 0
        // When the first million votes were in, and when the last million began.
        var firstMillion: Double?, lastMillionStart: Double?
        var longestBatch = 0.0
        for (i, range) in batches.enumerated() {
            if lastMillionStart == nil && workload.count - range.lowerBound <= 1_000_000 { lastMillionStart = seconds(since: start) }
            let batchStart = ContinuousClock.now
            var batch = options.pipelined ? ready.take() : workload.submissions(range)
            if options.checkpoints && (i % 100 == 99 || i == batches.count - 1) {
                batch.append(Submission(.takeCheckpoint(.interval), by: .system))
            }
            for outcome in try ledger.submit(batch) {
                guard case .appended = outcome else { fatalError("benchmark vote refused: \(outcome)") }
                appended += 1
            }
            longestBatch = max(longestBatch, seconds(since: batchStart))
            if firstMillion == nil && range.upperBound >= min(1_000_000, workload.count) { firstMillion = seconds(since: start) }
        }
        let elapsed = seconds(since: start)
        let lastMillion = elapsed - (lastMillionStart ?? 0)
        let recordBytes = try ledger.reader.rawRecord(ledger.size)?.count ?? 0
        let usedBytes = try ledger.storageInfo().usedBytes
        let root = ledger.root
        let fields: [(String, String)] = [
            ("impl", "\"ballotledger\""), ("votes", "\(appended)"), ("batch", "\(options.batch)"),
            ("keys", "\(options.keys)"), ("pipelined", "\(options.pipelined)"), ("durable", "\(options.durable)"),
            ("seconds", "\(elapsed)"), ("votes_per_second", "\(Double(appended) / elapsed)"),
            ("record_bytes", "\(recordBytes)"), ("used_bytes", "\(usedBytes)"),
            ("first_million_votes_per_second", "\(Double(min(1_000_000, appended)) / (firstMillion ?? elapsed))"),
            ("last_million_votes_per_second", "\(Double(min(1_000_000, appended)) / lastMillion)"),
            ("longest_batch_seconds", "\(longestBatch)"), ("map_growths", "\(stalls.growths)"),
            ("longest_map_growth_stall_seconds", "\(stalls.longest)"),
            ("root", "\"\(root)\""),
        ]
        ledger.close()
        print("{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
    }

    /// `ballot-bench open DIR`: times opening an existing ledger: with a full check (every
    /// event replayed and the kept state rebuilt), then twice from the kept state (the tail
    /// check), the second time from the state the first wrote at its close.
    static func open(_ dir: String) throws {
        for check in [OpenCheck.full, .tail, .tail] {
            let start = ContinuousClock.now
            let ledger = try Ledger(path: dir, options: Ledger.Options(check: check))
            let elapsed = seconds(since: start)
            print("{\"impl\":\"ballotledger-open\",\"events\":\(ledger.size),\"check\":\"\(check)\",\"replayed\":\(ledger.opening.replayedEvents),\"seconds\":\(elapsed)}")
            ledger.close()
        }
    }

    /// `ballot-bench scan DIR`: the floor for any replay, a bare sequential cursor over every
    /// record in the 'events' database, in the same read-transaction chunks `ballot-replay`
    /// uses, touching every byte (folded into a checksum so that the reads cannot be skipped).
    static func scan(_ dir: String) throws {
        let reader = try LedgerReader.openReadOnly(path: dir)
        let start = ContinuousClock.now
        var events: UInt64 = 0, bytes = 0, fold: UInt64 = 0
        try reader.scan { _, record, _ in
            events += 1
            bytes += record.count
            var i = 0
            while i + 8 <= record.count {
                fold ^= record.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                i += 8
            }
            while i < record.count { fold ^= UInt64(record[i]); i += 1 }
            return true
        }
        let elapsed = seconds(since: start)
        print("{\"impl\":\"cursor-scan\",\"events\":\(events),\"bytes\":\(bytes),\"seconds\":\(elapsed),\"events_per_second\":\(Double(events) / elapsed),\"fold\":\(fold)}")
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

struct FixedClock: LedgerClock {
    let at: Timestamp
    func now() -> Timestamp { at }
}

/// The map's growths and the longest time one held up a write (the store reports each).
final class StallObserver: EnvironmentObserver, @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    private var longestNanoseconds: UInt64 = 0

    func committed(nanoseconds: UInt64, ok: Bool) {}

    func grewMap(to mapSize: Int, stalledNanoseconds: UInt64) {
        lock.lock()
        defer { lock.unlock() }
        count += 1
        longestNanoseconds = max(longestNanoseconds, stalledNanoseconds)
    }

    var growths: Int { lock.lock(); defer { lock.unlock() }; return count }
    var longest: Double { lock.lock(); defer { lock.unlock() }; return Double(longestNanoseconds) / 1e9 }
}
