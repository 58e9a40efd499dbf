import ArgumentParser
import FoundationEssentials
import BallotDomain
import BallotAudit
import BallotFormat
import BallotReport

/// The checkpoint recorded at event `seq`, its signature and root checked (`ProofChecks`);
/// exits 2 if either fails, 64 if there is no checkpoint there.
func checkedCheckpoint(_ reader: LedgerReader, at seq: UInt64, pinnedKey: Digest32?) -> Checkpoint {
    checking { () throws(ProofChecks.Refusal) in try ProofChecks.checkpoint(reader, at: seq, pinnedKey: pinnedKey) }
}

/// Runs a check, exiting with its refusal's code and message: 64 for a claim about what the
/// ledger does not hold, 2 for a false claim or an altered ledger, 66 for an unreadable one.
func checking<R>(_ body: () throws(ProofChecks.Refusal) -> R) -> R {
    do {
        return try body()
    } catch {
        switch error.kind {
        case .outOfRange: fail(64, error.message)
        case .tampered: fail(Exit.tampered, error.message)
        case .unreadable: fail(Exit.unreadable, error.message)
        }
    }
}

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "What happened between two checkpoints, and the proof that the later ledger extends the earlier one.")
    @OptionGroup var ledger: LedgerOption
    @Option(help: "The sequence number of the earlier checkpoint event.") var from: UInt64
    @Option(help: "The sequence number of the later checkpoint event.") var to: UInt64
    @Option(help: "The daemon's checkpoint public key file.") var pubkey: String?
    @Flag(help: "Print the result as one JSON object.") var json = false

    func validate() throws {
        guard from < to else { throw ValidationError("--from (\(from)) must come before --to (\(to))") }
    }

    func run() throws {
        let pinned = readPublicKey(pubkey)
        let reader = try ledger.open()
        let old = checkedCheckpoint(reader, at: from, pinnedKey: pinned)
        let new = checkedCheckpoint(reader, at: to, pinnedKey: pinned)
        let proof = reading { try reader.consistencyProof(oldSize: old.size, newSize: new.size) }
        guard MerkleTree.verifyConsistency(oldSize: old.size, newSize: new.size, oldRoot: old.root, newRoot: new.root, proof: proof) else {
            fail(Exit.tampered, "the ledger of \(new.size) events does not extend the one of \(old.size): the consistency proof fails")
        }
        let before = reading { try Audit.replay(reader, until: .seq(old.size)).state }
        let after = reading { try Audit.replay(reader, until: .seq(new.size)).state }
        var kinds: [EventKind: Int] = [:]
        reading {
            try reader.forEachRecord(from: old.size + 1) { record, _, _ in
                guard record.seq <= new.size else { return false }
                kinds[record.event.kind, default: 0] += 1
                return true
            }
        }
        let change = CheckpointDiff(from: (from, old), to: (to, new), proof: proof, events: kinds, before: before, after: after)
        print(json ? String(decoding: change.json.serialized(), as: UTF8.self) : change.text)
    }
}

struct ReceiptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "receipt",
        abstract: "Check a vote's receipt (sequence number and leaf hash, from its ack) against a signed checkpoint and the ledger.")
    @OptionGroup var ledger: LedgerOption
    @Option(help: "The receipt's sequence number.") var seq: UInt64
    @Option(name: .customLong("leaf-hash"), help: "The receipt's leaf hash (64 hex digits).") var leafHash: String
    @Option(help: "The checkpoint event to check against (default: the first checkpoint that covers the event).") var checkpoint: UInt64?
    @Option(help: "The daemon's checkpoint public key file.") var pubkey: String?

    func run() throws {
        guard let receipt = Digest32(hex: leafHash) else { throw ValidationError("--leaf-hash must be 64 hex digits") }
        let pinned = readPublicKey(pubkey)
        let reader = try ledger.open()
        checking { () throws(ProofChecks.Refusal) in try ProofChecks.leaf(reader, seq: seq, is: receipt) }
        let at = checkpoint ?? firstCheckpoint(covering: seq, reader)
        let (c, proof) = checking { () throws(ProofChecks.Refusal) in
            try ProofChecks.receipt(reader, seq: seq, leafHash: receipt, checkpointAt: at, pinnedKey: pinned)
        }
        let record = reading { try reader.record(seq) }
        print("receipt holds: event \(seq) (\(record.map { "\($0.event.kind)" } ?? "?")) is in the ledger, leaf hash \(receipt.hex)")
        print("  included in the tree of \(c.size) events signed at event \(at) (\(c.takenAt.rfc3339), key \(c.publicKey.hex))")
        print("  inclusion proof (\(proof.count) hashes): \(proof.map(\.hex).joined(separator: " "))")
    }

    /// The first checkpoint recorded after `seq` (so covering it); exits 1 if there is none yet.
    func firstCheckpoint(covering seq: UInt64, _ reader: LedgerReader) -> UInt64 {
        var found: UInt64?
        reading {
            try reader.forEachRecord(from: seq + 1) { record, _, _ in
                if case .checkpointSigned = record.event { found = record.seq }
                return found == nil
            }
        }
        guard let found else { fail(1, "no checkpoint covers event \(seq) yet; ask the daemon for one (ballotctl checkpoint)") }
        return found
    }
}

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "A self-contained HTML page of one election's result, its inputs, and the verification verdict.")
    @OptionGroup var ledger: LedgerOption
    @Option(help: "The election id.") var election: String
    @Option(help: "Where to write the page.") var out: String
    @Option(help: "The daemon's checkpoint public key file.") var pubkey: String?

    func run() throws {
        let pinned = readPublicKey(pubkey)
        let reader = try ledger.open()
        let audit = reading { try Audit.verify(reader, pinnedKey: pinned) }
        let e = replayedElection(election, in: audit.state)
        var imports: [(seq: UInt64, record: ImportRecord)] = []
        reading {
            try reader.forEachRecord { record, _, _ in
                if case .importRecorded(let i) = record.event, i.election == e.id { imports.append((record.seq, i)) }
                return true
            }
        }
        let page = HTMLReport(election: e, audit: audit, imports: imports, ledgerPath: ledger.ledger).render()
        if let error = writeFileAtomically(out, Array(page.utf8)) { fail(73, "cannot write \(out): \(error)") }
        print("wrote \(out): \(e.id) — \(Verdict.headline(audit))")
        if audit.exitCode != 0 { throw ExitCode(audit.exitCode) }
    }
}
