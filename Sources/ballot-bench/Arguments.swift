import Foundation

/// `ballot-bench append --dir DIR [--votes N] [--batch B] [--keys] [--no-sync] [--pipelined] [--phases] [--checkpoints] [--checkpoint-key FILE] [--no-kept-state]`
struct Arguments: Sendable {
    static let usage = """
        usage: ballot-bench append --dir DIR [--votes N] [--batch B] [--keys] [--no-sync] [--pipelined] [--phases] [--checkpoints] [--checkpoint-key FILE] [--no-kept-state]
               ballot-bench jury --dir DIR [--batch B]
               ballot-bench open DIR
               ballot-bench scan DIR
        """

    var dir = ""
    var votes = 1_000_000
    var batch = 10_000
    /// Give every vote a vote_id idempotency key, as imports do.
    var keys = false
    var durable = true
    /// Hash the next batch's voter ids on a second thread while this one is appended.
    var pipelined = false
    /// Hash every voter id before the clock starts, and report that time on its own.
    var phases = false
    /// Sign a checkpoint after every 100 batches and at the end (an audited ledger's shape).
    var checkpoints = false
    /// Where to write the checkpoint key (its seed in hex, as ballotd reads it), so that
    /// ballotd can be started on the ledger; implies `checkpoints`.
    var checkpointKeyFile: String?
    /// Keep no state between starts: the tables in anonymous memory (to measure what keeping costs).
    var keepState = true

    init(_ args: [String]) throws {
        guard args.first == "append" else { throw UsageError() }
        var it = args.dropFirst().makeIterator()
        while let a = it.next() {
            switch a {
            case "--dir": dir = it.next() ?? ""
            case "--votes": votes = try Self.number(it.next())
            case "--batch": batch = try Self.number(it.next())
            case "--keys": keys = true
            case "--no-sync": durable = false
            case "--pipelined": pipelined = true
            case "--phases": phases = true
            case "--checkpoints": checkpoints = true
            case "--no-kept-state": keepState = false
            case "--checkpoint-key":
                checkpointKeyFile = it.next()
                checkpoints = true
            default: throw UsageError()
            }
        }
        if dir.isEmpty { throw UsageError() }
    }

    static func number(_ s: String?) throws -> Int {
        guard let s, let n = Int(s), n > 0 else { throw UsageError() }
        return n
    }

    static func text(_ s: String?) throws -> String {
        guard let s, !s.isEmpty else { throw UsageError() }
        return s
    }

    struct UsageError: Error {}
}
