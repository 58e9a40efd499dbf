import Testing
import Foundation
import TestSupport
@testable import BallotLedger
@testable import BallotFormat
@testable import BallotDomain

/// Checkpoints as C2SP signed notes (docs/ledger-format.md §3.1): the note's text and its
/// signature line are exactly what c2sp.org/signed-note and tlog-checkpoint say, a ledger keeps
/// its origin, and a malformed note is refused with what is wrong. (scripts/interop has Go's own
/// `sumdb/note` open the daemon's notes.)
@Suite struct CheckpointNoteTests {
    let key = try! CheckpointKey(seed: Array(repeating: 7, count: 32))

    func ledger(_ dir: TemporaryDirectory, origin: String? = nil) throws -> Ledger {
        var options = Fixtures.options()
        options.checkpointOrigin = origin
        let ledger = try Ledger(path: dir.sub("ledger"), options: options, clock: ManualClock(Fixtures.now), checkpointKey: key)
        _ = try ledger.submit(Fixtures.setUpCommands().map { Submission($0, by: Fixtures.admin) })
        _ = try ledger.submit(Fixtures.votes(0..<30).map { Submission($0, by: Fixtures.importer) })
        return ledger
    }

    func takeCheckpoint(_ ledger: Ledger) throws -> (seq: UInt64, checkpoint: Checkpoint) {
        let receipt = try #require(try ledger.submit(Submission(.takeCheckpoint(.request), by: Fixtures.admin)).receipt)
        guard case .checkpointSigned(let c)? = try ledger.reader.record(receipt.seq)?.event else {
            throw LedgerError.outOfRange("event \(receipt.seq) is not a checkpoint")
        }
        return (receipt.seq, c)
    }

    @Test func aCheckpointIsANoteOfTheLedgersOrigin() throws {
        let dir = TemporaryDirectory()
        let ledger = try ledger(dir, origin: "example.org/kommuneprisen-2026")
        let (seq, c) = try takeCheckpoint(ledger)
        let record = try #require(try ledger.reader.record(seq))
        #expect(record.event.kind == .checkpointNoted)
        #expect(c.origin == "example.org/kommuneprisen-2026" && c.hasValidSignature)
        let note = try #require(c.note)
        let root = c.root.withBytes { Data($0).base64EncodedString() }
        #expect(note.text == "example.org/kommuneprisen-2026\n\(c.size)\n\(root)\n")
        // The signature line: the key name is the origin, the key ID SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key)[:4].
        var idInput = Array("example.org/kommuneprisen-2026\n".utf8) + [0x01]
        c.publicKey.withBytes { idInput += $0 }
        let id = Array(idInput.withUnsafeBytes { SHA256Digester.hash($0) }.withBytes { Array($0) }.prefix(4))
        let line = "— example.org/kommuneprisen-2026 " + Data(id + c.signature).base64EncodedString() + "\n"
        #expect(note.serialized == note.text + "\n" + line)
        // Read back, it verifies under its name and key, and under no other.
        let read = try SignedNote(parsing: Array(note.serialized.utf8))
        #expect(read == note)
        #expect(read.verifies(name: "example.org/kommuneprisen-2026", publicKey: c.publicKey) == true)
        #expect(read.verifies(name: "example.org/other", publicKey: c.publicKey) == nil)
        #expect(read.verifies(name: "example.org/kommuneprisen-2026", publicKey: CheckpointKey().publicKey) == nil)
        let body = try CheckpointNote(text: read.text)
        #expect(body == CheckpointNote(origin: "example.org/kommuneprisen-2026", size: c.size, root: c.root))
        // Any change to the text breaks the signature.
        var forged = read
        forged.text = CheckpointNote(origin: body.origin, size: body.size + 1, root: body.root).text
        #expect(forged.verifies(name: "example.org/kommuneprisen-2026", publicKey: c.publicKey) == false)
    }

    @Test func aLedgerKeepsItsOrigin() throws {
        let dir = TemporaryDirectory()
        do {
            let ledger = try ledger(dir)
            #expect(ledger.checkpointOrigin.hasPrefix("ballotledger/") && ledger.checkpointOrigin.count == 13 + 32)
            let (_, c) = try takeCheckpoint(ledger)
            #expect(c.origin == ledger.checkpointOrigin)
            ledger.close()
        }
        var options = Fixtures.options()
        options.checkpointOrigin = "example.org/another-name"
        let error = #expect(throws: LedgerError.self) {
            try Ledger(path: dir.sub("ledger"), options: options, clock: ManualClock(Fixtures.now), checkpointKey: key)
        }
        #expect("\(error!)".contains("a log keeps its name"))
        for bad in ["has space", "café.example/x", "a+b", ""] {
            options.checkpointOrigin = bad
            #expect(throws: LedgerError.self, "\(bad)") {
                try Ledger(path: dir.sub("ledger"), options: options, clock: ManualClock(Fixtures.now), checkpointKey: key)
            }
        }
        // Unset, the ledger's own origin stays.
        let again = try Ledger(path: dir.sub("ledger"), options: Fixtures.options(), clock: ManualClock(Fixtures.now), checkpointKey: key)
        #expect(again.checkpointOrigin == again.state.lastCheckpoint?.checkpoint.origin)
        again.close()
    }

    /// The domain's rule: after a note, a checkpoint of another origin, or one signed the old way,
    /// does not stand.
    @Test func aCheckpointAfterANoteIsANoteOfTheSameOrigin() throws {
        let dir = TemporaryDirectory()
        let ledger = try ledger(dir, origin: "example.org/a")
        let (_, c) = try takeCheckpoint(ledger)
        var other = c
        other.origin = "example.org/b"
        var old = c
        old.origin = nil
        for (forged, says) in [(other, "a log keeps its name"), (old, "must be a note")] {
            var next = forged
            next.size = ledger.state.lastSeq
            let error = #expect(throws: DomainError.self) {
                try next.validate(in: ledger.state, seq: ledger.state.lastSeq + 1, at: next.takenAt)
            }
            #expect(error?.message.contains(says) == true, "\(String(describing: error))")
        }
    }

    @Test(arguments: [
        ("no blank line", "a\n1\nroot\n— a AAAAAAA=\n", "no blank line"),
        ("no signature", "a\n1\n\n", "no signature lines"),
        ("not ending in a newline", "a\n\n— a AAAAAAA=", "does not end in a newline"),
        ("a control character", "a\u{01}\n\n— a AAAAAAA=\n", "control character"),
        ("a bad line", "a\n\n— a\n", "is not \"— <name> <base64>\""),
        ("a plus in the name", "a\n\n— a+b AAAAAAA=\n", "key name"),
        ("a combining mark after the space", "a\n\n— a \u{301}AAAAAAA=\n", "not base64"),
        ("not base64", "a\n\n— a %%%%\n", "not base64"),
        ("too short", "a\n\n— a AAAA\n", "not base64"),
    ])
    func aMalformedNoteIsRefusedWithWhatIsWrong(what: String, note: String, says: String) {
        let error = #expect(throws: SignedNote.Malformed.self, "\(what)") { try SignedNote(parsing: Array(note.utf8)) }
        #expect(error?.description.contains(says) == true, "\(what): \(String(describing: error))")
    }

    /// Origin, size and root, each line exact; extension lines after them are the log's business
    /// (ours writes none), and are read past.
    @Test func aCheckpointTextIsOriginSizeAndRoot() {
        let root = Data(repeating: 1, count: 32).base64EncodedString()
        #expect((try? CheckpointNote(text: "o\n12\n\(root)\n"))?.size == 12)
        #expect((try? CheckpointNote(text: "o\n12\n\(root)\nan extension\n"))?.size == 12)
        for bad in ["o\n012\n\(root)\n", "o\n-1\n\(root)\n", "o\n12\n\(root)", "\n12\n\(root)\n", "o\n12\nAAAA\n", "o\n12\n"] {
            #expect(throws: SignedNote.Malformed.self, "\(bad.debugDescription)") { try CheckpointNote(text: bad) }
        }
    }
}
