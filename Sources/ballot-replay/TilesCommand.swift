import ArgumentParser
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import BallotDomain
import BallotAudit
import BallotFormat

/// `ballot-replay tiles`: publishes a ledger copy as a tiled transparency log
/// (c2sp.org/tlog-tiles) in a directory any web server can serve: the tiles and entry bundles
/// of a signed checkpoint's tree, and the checkpoint note. Run again on a larger copy, it
/// writes only what is new.
struct TilesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tiles",
        abstract: "Write a ledger's tiles, entry bundles and checkpoint (c2sp.org/tlog-tiles) into a directory to serve.",
        discussion: """
            The checkpoint is the ledger's newest note (event type 13), or the one at --checkpoint, \
            checked against the ledger first; --witnessed publishes a cosigned note instead (the \
            daemon's data_dir/checkpoint.witnessed) once its signature and root check. Exit codes: \
            0 written; 2 the checkpoint does not match the ledger; 64 usage; 66 unreadable; 73 \
            cannot write.
            """)
    @OptionGroup var ledger: LedgerOption
    @Option(help: "The directory to write (made if missing); what it holds of this ledger already is kept.") var out: String
    @Option(help: "The sequence number of the checkpoint event to publish (default: the newest note).") var checkpoint: UInt64?
    @Option(help: "A cosigned checkpoint note to publish (it must verify with the ledger's key and root).") var witnessed: String?
    @Option(help: "The daemon's checkpoint public key file.") var pubkey: String?
    @Option(help: "Entry bundles: auto (withheld while an election's standings are sealed now, as the daemon does), always, or never.")
    var entries: EntriesMode = .auto

    enum EntriesMode: String, ExpressibleByArgument { case auto, always, never }

    /// Whether the bundles may be written: a bundle holds each vote's nominee, which stays
    /// hidden while voting is open (unless the election's standings are public).
    func entriesMayGoOut(_ reader: LedgerReader) -> Bool {
        switch entries {
        case .always: return true
        case .never: return false
        case .auto:
            let state = reading { try Audit.replay(reader).state }
            let now = Timestamp(microseconds: Int64(time(nil)) * 1_000_000)
            let sealed = state.elections.filter { !$0.status.standingsArePublic(at: now) }.map(\.id.value)
            if !sealed.isEmpty { warn("the standings of \(sealed.joined(separator: ", ")) are sealed: the entry bundles are withheld (--entries always to write them)") }
            return sealed.isEmpty
        }
    }

    func run() throws {
        let pinned = readPublicKey(pubkey)
        let reader = try ledger.open()
        let seq = checkpoint ?? newestNote(reader)
        let signed = checkedCheckpoint(reader, at: seq, pinnedKey: pinned)
        guard var note = signed.note else { fail(64, "event \(seq) is a checkpoint in the ledger's own form (type 12), not a note: it cannot be published as tiles") }
        if let witnessed {
            note = cosigned(witnessed, by: signed, reader)
        }
        let writer = TileWriter(directory: out, reader: reader)
        if let published = writer.published(), let chosen = try? CheckpointNote(text: note.text), published.size > chosen.size,
           (try? reader.root(size: published.size).root) == published.root {
            fail(64, "\(out) publishes a larger tree of this ledger (\(published.size) events) than the checkpoint chosen (\(chosen.size)): publishing it would look like a rollback to every monitor")
        }
        let update: TileWriter.Update
        do {
            update = try writer.update(to: note, entries: entriesMayGoOut(reader))
        } catch let error as TileError {
            fail(73, "\(error)")
        } catch {
            fail(Exit.unreadable, "\(error)")
        }
        if let replaced = update.replaced {
            warn("the checkpoint in \(out) (size \(replaced.size)) is not one of this ledger's trees: its tiles were removed, and this ledger's written")
        }
        let size = (try? CheckpointNote(text: note.text).size) ?? signed.size
        print("tree size \(size): \(update.files) files written (tiles up to size \(update.from) were there), checkpoint \(out)/checkpoint")
    }

    /// The newest checkpoint note in the ledger.
    func newestNote(_ reader: LedgerReader) -> UInt64 {
        var newest: UInt64?
        reading {
            try reader.scan { seq, bytes, _ in
                if bytes.count > 1, bytes[1] == EventKind.checkpointNoted.rawValue { newest = seq }
                return true
            }
        }
        guard let newest else { fail(64, "the ledger holds no checkpoint note (event type 13) to publish") }
        return newest
    }

    /// The note in `path`, once the log's signature on it verifies and its tree is the ledger's.
    func cosigned(_ path: String, by signed: Checkpoint, _ reader: LedgerReader) -> SignedNote {
        guard let bytes = FileManager.default.contents(atPath: path) else { fail(66, "cannot read \(path)") }
        let note: SignedNote
        let text: CheckpointNote
        do {
            note = try SignedNote(parsing: Array(bytes))
            text = try CheckpointNote(text: note.text)
        } catch {
            fail(64, "\(path): \(error)")
        }
        guard text.origin == signed.origin, note.verifies(name: text.origin, publicKey: signed.publicKey) == true else {
            fail(Exit.tampered, "\(path): no signature of the ledger's key (\(signed.origin ?? "?")) verifies on it")
        }
        let root = reading { try reader.root(size: text.size).root }
        guard root == text.root else {
            fail(Exit.tampered, "\(path): its root is not the ledger's at size \(text.size)")
        }
        return note
    }
}
