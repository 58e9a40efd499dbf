import ArgumentParser
import FoundationEssentials
import BallotDomain
import BallotAudit
import BallotFormat
import BallotHTTP
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
        abstract: "Check a receipt: a c2sp.org/tlog-proof FILE offline, or an ack's sequence number and leaf hash against the ledger.",
        discussion: """
            ballot-replay receipt FILE --pubkey KEY [--witness-key VKEY]... [--policy FILE]: the \
            log's signature on the receipt's checkpoint, each witness's cosignature (or the \
            policy's quorum), and the record's place under the root, without the ledger. \
            Exit codes: 0 holds; 2 it does not (what was wrong is printed); 64 usage; 66 unreadable.
            """)
    @Argument(help: "A receipt file (c2sp.org/tlog-proof, from 'ballotctl vote cast --receipt').") var file: String?
    @Option(help: "The ledger directory, for a receipt given as --seq and --leaf-hash.") var ledger: String?
    @Option(help: "The receipt's sequence number.") var seq: UInt64?
    @Option(name: .customLong("leaf-hash"), help: "The receipt's leaf hash (64 hex digits).") var leafHash: String?
    @Option(help: "The checkpoint event to check against (default: the first checkpoint that covers the event).") var checkpoint: UInt64?
    @Option(help: "The daemon's checkpoint public key file.") var pubkey: String?
    @Option(name: .customLong("witness-key"), help: ArgumentHelp("A witness whose cosignature the checkpoint must carry (repeatable).", valueName: "VKEY"))
    var witnessKeys: [String] = []
    @Option(help: "A witness policy (c2sp.org/tlog-policy) whose quorum must have cosigned.") var policy: String?
    @Option(help: "Also check that the log published at this tiles URL (c2sp.org/tlog-tiles) still holds the event: its checkpoint extends the receipt's.")
    var tiles: String?

    func validate() throws {
        if file == nil {
            guard ledger != nil, seq != nil, leafHash != nil else { throw ValidationError("give a receipt FILE, or --ledger with --seq and --leaf-hash") }
        } else {
            guard pubkey != nil else { throw ValidationError("a receipt file is checked against the log's key: give --pubkey") }
        }
    }

    func run() throws {
        if let file { return checkProof(file) }
        guard let leafHash, let seq, let ledger, let receipt = Digest32(hex: leafHash) else { throw ValidationError("--leaf-hash must be 64 hex digits") }
        let pinned = readPublicKey(pubkey)
        let reader = try LedgerOption.parse(["--ledger", ledger]).open()
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

    /// Checks a tlog-proof file on its own (`TlogProof.check`), and says what it records.
    func checkProof(_ path: String) {
        guard let logKey = readPublicKey(pubkey) else { fail(64, "give --pubkey") }
        guard let bytes = FileManager.default.contents(atPath: path) else { fail(Exit.unreadable, "cannot read \(path)") }
        let witnesses: [VerifierKey] = witnessKeys.map { text in
            do { return try VerifierKey(parsing: text) } catch { fail(64, "--witness-key \(text.prefix(80)): \(error)") }
        }
        let quorum: WitnessPolicy? = policy.map { file in
            guard let data = FileManager.default.contents(atPath: file) else { fail(Exit.unreadable, "cannot read the policy \(file)") }
            do { return try WitnessPolicy(parsing: String(decoding: data, as: UTF8.self)) } catch { fail(64, "\(file): \(error)") }
        }
        let proof: TlogProof
        do { proof = try TlogProof(parsing: Array(bytes)) } catch { fail(Exit.tampered, "\(path): \(error)") }
        let checked: TlogProof.Checked
        do { checked = try proof.check(logKey: logKey, witnesses: witnesses, policy: quorum) } catch { fail(Exit.tampered, "\(path): \(error)") }
        let seq = proof.index + 1
        let what = proof.record.flatMap { record in
            try? record.withUnsafeBytes { try RecordCodec.decode($0, seq: seq) }
        }.map { "\($0.event.kind)\(Self.summary($0.event))" } ?? "a record this build cannot read"
        print("receipt holds: event \(seq) (\(what)) is in the tree of \(checked.checkpoint.size) events of \(checked.checkpoint.origin), leaf hash \(checked.leaf.hex)")
        print("  signed by the log's key \(logKey.hex)" + (checked.cosigners.isEmpty ? "; no cosignatures were asked for" : "; cosigned by \(checked.cosigners.joined(separator: ", "))"))
        if let tiles { checkPublished(tiles, holds: checked.checkpoint, logKey: logKey) }
    }

    /// The log published at `tiles` must extend the receipt's checkpoint: its own checkpoint
    /// signed (and cosigned as asked), its tiles hashing to its root, and a consistency proof
    /// from the tiles from the receipt's tree to it. Exits 2 when it does not extend it.
    func checkPublished(_ tiles: String, holds receipt: CheckpointNote, logKey: Digest32) {
        guard let url = HTTPURL(tiles) else { fail(64, "--tiles \(tiles): write http://HOST:PORT[/PATH]") }
        let trust = Trust(logKey: logKey, witnessKeys: witnessKeys, policy: policy)
        let published: (note: SignedNote, text: CheckpointNote)
        do { published = try trust.fetchCheckpoint(url) } catch { fail(1, error.description) }
        guard published.text.origin == receipt.origin else { fail(Exit.tampered, "the log at \(url) is \(published.text.origin), not \(receipt.origin)") }
        guard published.text.size >= receipt.size else {
            fail(Exit.tampered, "the log at \(url) now shows \(published.text.size) events, fewer than the receipt's checkpoint (\(receipt.size)): a rollback")
        }
        let nodes = TileNodes(size: published.text.size) { path in try fetchTile(url, path) }
        // The tree the tiles give at the receipt's size, linked to the signed root by a
        // consistency proof from the same tiles: no link is a broken publication (1); linked,
        // another root than the receipt's is a split view (2).
        let derived: MerkleHash
        do {
            guard try MerkleTree.root(size: published.text.size, nodes.node) == published.text.root else {
                fail(1, "the tiles at \(url) do not hash to the root of its checkpoint (size \(published.text.size))")
            }
            derived = try MerkleTree.root(size: receipt.size, nodes.node)
            let proof = try MerkleTree.consistencyProof(oldSize: receipt.size, newSize: published.text.size, nodes.node)
            guard MerkleTree.verifyConsistency(oldSize: receipt.size, newSize: published.text.size, oldRoot: derived,
                                               newRoot: published.text.root, proof: proof) else {
                fail(1, "the tiles at \(url) do not give a consistency proof to its signed root")
            }
        } catch {
            fail(1, "\(url): \(error)")
        }
        guard derived == receipt.root else {
            fail(Exit.tampered, "the log at \(url) (\(published.text.size) events) does not extend the receipt's checkpoint (\(receipt.size)): a split view")
        }
        do { try trust.requireCosigned(published.note, published.text, at: url) } catch { fail(1, error.description) }
        print("  and the log at \(url) still holds it: its checkpoint of \(published.text.size) events extends the receipt's")
    }

    static func summary(_ event: Event) -> String {
        guard case .voteCast(let vote) = event else { return "" }
        return ": \(vote.election) for \(vote.nominee), cast \(vote.castAt.rfc3339)"
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
