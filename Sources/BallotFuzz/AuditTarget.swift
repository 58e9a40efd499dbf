import BallotAudit
import BallotFormat
import BallotStore
import BallotDomain
import Foundation

/// A copy of a golden ledger (`v2-2026-12-04`: every event type, a certified election,
/// checkpoints of type 12, whose signature covers their digests too), whose stored records and Merkle nodes each input alters: some bytes flipped,
/// a value cut short or lengthened, a record taken out. The audit `ballot-replay verify` runs
/// must then find something (or refuse to read the ledger) whenever an altered entry is one
/// the ledger itself protects; an unaltered ledger must verify. Each input's changes are undone
/// before the next.
///
/// What the ledger protects: every Merkle node stored, every event under a stored node (the
/// complete subtrees of 16 leaves and up) or under the root that a checkpoint signs, and of a
/// checkpoint past those (the golden ledger's last event) all but the fields its signature
/// leaves out: the actor who recorded it (role and uid, offsets 18 to 22) and its idempotency
/// key. Changed, and still obeying the rules, those make another ledger, which only a
/// checkpoint or receipt held elsewhere can tell, as with events cut from the end. Fuzzing found
/// that case (`crash-5d2dbbf…` in the corpus): the target still audits such an input, and must
/// not trap, but need not find it. A cut or lengthened record is always protected (its length
/// is fixed by its fields). Of an event past those that is not a checkpoint (none in the
/// golden ledger), no flipped byte counts as protected: which of its fields the rules or the
/// stored projections would catch depends on the field.
final class AuditTarget: @unchecked Sendable {
    static let shared = AuditTarget(ledger: goldenLedger)
    /// The same on the small golden ledger the long run uses (`v2-small-for-fuzzing`), where
    /// inputs found there are replayed as regressions.
    static let small = AuditTarget(ledger: smallLedger)

    static var smallLedger: String { repositoryRoot + "/Tests/Fixtures/golden/v2-small-for-fuzzing" }

    private static var repositoryRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    private let env: Environment
    private let dbs: LedgerDatabases
    private let reader: LedgerReader
    /// Every stored record and node: which database, its key, whether it is the last event,
    /// and which of its bytes the ledger does not protect (above), if any.
    private let entries: [(db: Database, key: [UInt8], isLastEvent: Bool, unprotected: [Range<Int>])]
    /// One input at a time: an input's changes must not be seen by another's audit.
    private let lock = NSLock()

    /// The golden ledger the target starts from: `BALLOT_FUZZ_LEDGER`, or `v2-2026-12-04`. The
    /// long run uses `v2-small-for-fuzzing` (23 events), whose audit is some 3.5 times cheaper. (Of
    /// a type 13 checkpoint past the protected range, its signature covers only its note: the
    /// bytes the target counts as unprotected would be more.)
    static var goldenLedger: String {
        if let path = ProcessInfo.processInfo.environment["BALLOT_FUZZ_LEDGER"] { return path }
        return repositoryRoot + "/Tests/Fixtures/golden/v2-2026-12-04"
    }

    private init(ledger: String) {
        let copy = NSTemporaryDirectory() + "ballot-fuzz-audit-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let files = FileManager.default
        try? files.removeItem(atPath: copy)
        do {
            try files.createDirectory(atPath: copy, withIntermediateDirectories: true)
            try files.copyItem(atPath: ledger + "/data.mdb", toPath: copy + "/data.mdb")
            let env = try Environment(path: copy, options: EnvironmentOptions(mapSize: 16 << 20, durable: false))
            let dbs = try LedgerDatabases(env)
            let reader = LedgerReader(env: env, dbs: dbs)
            (self.env, self.dbs, self.reader) = (env, dbs, reader)
            let report = try Audit.verify(reader, helpers: 0)
            precondition(report.findings.isEmpty, "the golden ledger does not verify: \(report.findings)")
            let size = report.events
            // The events a stored node covers, or the last checkpoint's root (the events before it).
            let underNodes = (size >> UInt64(LedgerKeys.firstStoredLevel)) << UInt64(LedgerKeys.firstStoredLevel)
            let protectedThrough = max(underNodes, (report.checkpoints.last?.seq ?? 1) - 1)
            var entries: [(Database, [UInt8], Bool, [Range<Int>])] = []
            try env.read { txn in
                for db in [dbs.events, dbs.merkle] {
                    try txn.forEach(in: db) { key, _ in
                        let seq = db == dbs.events ? LedgerKeys.sequence(of: key) : nil
                        entries.append((db, Array(key), seq == size, []))
                        return true
                    }
                }
            }
            for i in entries.indices where entries[i].0 == dbs.events {
                guard let seq = entries[i].1.withUnsafeBytes({ LedgerKeys.sequence(of: $0) }), seq > protectedThrough,
                      let record = try reader.record(seq) else { continue }
                if case .checkpointSigned = record.event {
                    entries[i].3 = [18..<23, 25..<(25 + record.idempotencyKey.utf8.count)]
                } else {
                    entries[i].3 = [0..<Int.max]
                }
            }
            self.entries = entries
        } catch {
            fatalError("ballot-fuzz: cannot set up the audit target from \(ledger): \(error)")
        }
        try? files.removeItem(atPath: copy)   // the environment keeps its open file
    }

    /// Each 4 bytes of input alter one entry: which (2 bytes), where (1), and how (1): flip
    /// bits at that offset, cut the value there, add bytes, or take the record out (never the
    /// last event: a ledger cut at its end is a shorter ledger, which only a checkpoint held
    /// elsewhere can tell).
    func run(_ input: UnsafeRawBufferPointer) {
        let (altered, alteredProtected, findings) = audit(input)
        guard let findings else { return }   // the ledger could not be read: refused, a verdict too
        if altered == 0 {
            precondition(findings.isEmpty, "an unaltered ledger has findings: \(findings.prefix(3))")
        } else if alteredProtected > 0 {
            precondition(!findings.isEmpty, "the audit found nothing in a ledger with \(alteredProtected) protected entries altered")
        }
    }

    /// Alters the copy as `input` says, audits it, and undoes the changes: how many entries
    /// were altered, how many of them the ledger protects, and what the audit found (nil when it
    /// could not read the ledger).
    func audit(_ input: UnsafeRawBufferPointer) -> (altered: Int, alteredProtected: Int, findings: [AuditFinding]?) {
        lock.lock()
        defer { lock.unlock() }
        var originals: [(db: Database, key: [UInt8], value: [UInt8], isProtected: Bool)] = []
        do {
            try env.write { txn in
                var i = 0
                while i + 4 <= input.count && originals.count < 8 {
                    let entry = entries[(Int(input[i]) << 8 | Int(input[i + 1])) % entries.count]
                    let offset = Int(input[i + 2]), how = input[i + 3]
                    i += 4
                    guard !originals.contains(where: { $0.db == entry.db && $0.key == entry.key }),
                          let value = try txn.value(forKey: entry.key, in: entry.db), !value.isEmpty else { continue }
                    var altered = value
                    // Only a flip can leave a record's length what its fields say.
                    let isProtected = how % 4 >= 2 || !entry.unprotected.contains { $0.contains(offset % value.count) }
                    switch how % 4 {
                    case 0, 1: altered[offset % value.count] ^= how | 1
                    case 2: altered.removeSubrange((offset % value.count)...)
                    default:
                        guard entry.db == dbs.events && !entry.isLastEvent else {
                            altered.append(contentsOf: [how, UInt8(offset)])
                            break
                        }
                        _ = try txn.delete(entry.key, in: entry.db)
                        originals.append((entry.db, entry.key, value, true))
                        continue
                    }
                    try txn.put(entry.key, altered, in: entry.db)
                    originals.append((entry.db, entry.key, value, isProtected))
                }
            }
        } catch {
            preconditionFailure("altering the ledger copy failed: \(error)")
        }
        defer {
            try! env.write { txn in
                for o in originals { try txn.put(o.key, o.value, in: o.db) }
            }
        }
        let alteredProtected = originals.filter(\.isProtected).count
        do {
            return (originals.count, alteredProtected, try Audit.verify(reader, helpers: 0).findings)
        } catch {
            return (originals.count, alteredProtected, nil)
        }
    }
}
