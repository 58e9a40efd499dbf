public import BallotDomain
public import BallotCollections
public import BallotFormat
public import BallotAudit
#if canImport(Glibc)
import Glibc
#endif

/// The state a writer keeps between starts, so that opening a ledger of 100 million events
/// replays only the events after it (docs/architecture.md, "What is kept between starts"):
///
/// - `voters.<generation>.table` and `keys.<generation>.table`: the voter table and the
///   idempotency index, a header page (with their count of entries) and their slots as they are
///   in memory, mapped shared and changed in place by every batch; up to a cap of slots, past
///   which older entries go into layers that never change: frozen tables and sorted runs
///   (`voters.<generation>.run`, `keys.<generation>.run`; `TableLayers`);
/// - `snapshot`: what they and the election states cover (the ledger's id, an event, the
///   Merkle root there), the election states, and a digest (`KeptStateCodec`), written after
///   every `interval` events and at a clean close.
///
/// The tables may run ahead of the snapshot, and may hold keys of a batch that never committed
/// (the process died between the two): the tags in them make both harmless
/// (`VoterRegister`, `SequenceIndex`). What they cannot survive is losing pages, which only a
/// crash of the machine does: a snapshot not written at a clean close names the boot it was
/// written in, and after another boot the state is rebuilt.
final class KeptState {
    let directory: String
    private let voterLayers: TableLayers<TaggedKeySet>
    private let keyLayers: TableLayers<SequenceIndex>
    /// `state/lock`, held (flock) while this writer uses the files: a second writer of the same
    /// ledger, in this process or another, would change the tables under the first.
    private var lock: Int32

    /// Why a kept state was not used, as the open logs it.
    struct Rejection: Error, CustomStringConvertible {
        let reason: String
        var description: String { reason }
    }

    /// Takes the files in `directory` (making it if need be): the tables a batch changes grow to
    /// at most `capSlots` slots each before older entries go to layers.
    init(directory: String, capSlots: Int) throws {
        self.directory = directory
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw LedgerError.tables(TableError(call: "mkdir", what: "of \(directory)", errno: errno))
        }
        lock = Glibc.open("\(directory)/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0 else { throw LedgerError.tables(TableError(call: "open", what: "of \(directory)/lock", errno: errno)) }
        guard flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            let e = errno
            close(lock)
            throw LedgerError.tables(TableError(call: "flock", what: "of \(directory)/lock: another writer has this ledger open", errno: e))
        }
        voterLayers = TableLayers(directory: directory, name: "voters", capSlots: max(capSlots, TaggedKeySet.minimumFileSlots))
        keyLayers = TableLayers(directory: directory, name: "keys", capSlots: max(capSlots, SequenceIndex.minimumFileSlots))
    }

    deinit { release() }

    /// Lets another writer have the files (at a close; the tables must not be used after).
    func release() {
        guard lock >= 0 else { return }
        voterLayers.waitForBuild()
        keyLayers.waitForBuild()
        close(lock)
        lock = -1
    }

    var snapshotPath: String { "\(directory)/snapshot" }

    /// The kernel's id of this boot: pages of a shared mapping survive the death of the process,
    /// not of the machine. Empty when it cannot be read, which matches no boot.
    static let bootID: String = {
        guard let f = fopen("/proc/sys/kernel/random/boot_id", "r") else { return "" }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 64)
        guard fgets(&line, 64, f) != nil else { return "" }
        return String(decoding: line.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()

    // MARK: Loading

    /// The state kept for the ledger `id`, whose stored tree `root(size)` gives the root over its
    /// first events and which holds `events` events; or why it cannot be used.
    func load(ledgerID: [UInt8], events: UInt64, storedRoot: (UInt64) throws -> MerkleHash,
              storedFrontier: (UInt64) throws -> MerkleFrontier) throws(Rejection) -> (KeptStateCodec.Header, AuditStart) {
        guard let bytes = readFile(snapshotPath) else { throw Rejection(reason: "there is no kept state (\(snapshotPath))") }
        let header: KeptStateCodec.Header, image: LedgerState.Image
        do {
            (header, image) = try KeptStateCodec.decode(bytes)
        } catch {
            throw Rejection(reason: "the kept state is corrupt: \(error)")
        }
        guard header.ledgerID == ledgerID else {
            throw Rejection(reason: "the kept state belongs to another ledger (id \(hex(header.ledgerID)); this ledger's is \(hex(ledgerID)))")
        }
        guard header.events <= events else {
            throw Rejection(reason: "the kept state is stale: it covers \(header.events) events, but the ledger holds \(events) (was the ledger put back from an older copy?)")
        }
        let root: MerkleHash
        do {
            root = try storedRoot(header.events)
        } catch {
            throw Rejection(reason: "the ledger's tree over the kept state's \(header.events) events cannot be read: \(error)")
        }
        guard root == header.root else {
            throw Rejection(reason: "the kept state is stale or from another ledger: its root over \(header.events) events is \(header.root.hex), the ledger's is \(root.hex)")
        }
        guard header.synced || (!Self.bootID.isEmpty && header.bootID == Self.bootID) else {
            throw Rejection(reason: "the machine restarted since the kept tables were last written in full (boot \(header.bootID), now \(Self.bootID))")
        }
        guard header.events == image.lastSeq else {
            throw Rejection(reason: "the kept state is corrupt: it says it covers \(header.events) events but its elections stand at event \(image.lastSeq)")
        }
        let voters: TaggedKeySet, keys: SequenceIndex
        do {
            voters = try voterLayers.load(header.voterLayers)
            keys = try keyLayers.load(header.keyLayers)
        } catch {
            throw Rejection(reason: "the kept state is corrupt: \(error)")
        }
        voters.keep(in: voterLayers)
        keys.keep(in: keyLayers)
        voterLayers.removeUnusedFiles(keeping: header.voterLayers)
        keyLayers.removeUnusedFiles(keeping: header.keyLayers)
        do {
            let state = try LedgerState(image: image, voters: voters)
            let frontier = try storedFrontier(header.events)
            if header.synced {
                // The replay about to run changes the tables: a snapshot that says they are on
                // disk in full must not outlive that, even through a crash of the machine.
                var unsynced = header
                unsynced.synced = false
                unsynced.bootID = Self.bootID
                try writeFile(snapshotPath, KeptStateCodec.encode(unsynced, image), durable: true)
            }
            return (header, AuditStart(state: state, frontier: frontier, lastTimestamp: header.lastTimestamp, keyIndex: keys,
                                       keySeed: header.keySeed))
        } catch {
            throw Rejection(reason: "the kept state cannot be loaded: \(error)")
        }
    }

    /// An empty state whose tables are new files (every old one removed), with room for
    /// `events` (up to the cap): what a rebuild replays every event into.
    func fresh(events: UInt64) throws -> AuditStart {
        unlink(snapshotPath)
        let capacity = Int(clamping: min(events, 1 << 30))
        do throws(TableError) {
            let voters = try voterLayers.fresh(slots: TaggedKeySet.minimumFileSlots)
            let keys = try keyLayers.fresh(slots: SequenceIndex.minimumFileSlots)
            voters.keep(in: voterLayers)
            keys.keep(in: keyLayers)
            try voters.reserve(min(capacity, voterLayers.capSlots / 4 * 3))
            try keys.reserve(min(capacity, keyLayers.capSlots / 2))
            return AuditStart(state: LedgerState(voters: voters), frontier: MerkleFrontier(), lastTimestamp: Timestamp(microseconds: 0),
                              keyIndex: keys, keySeed: IdempotencySlot.seed)
        } catch {
            throw LedgerError.tables(error)
        }
    }

    // MARK: Saving

    /// Writes the snapshot of `writer`. With `clean`, the tables are first written to disk in
    /// full (so the state survives a crash of the machine until the next change), and the
    /// snapshot is made durable. Otherwise it is only renamed into place: it is for the death of
    /// the process, which the page cache survives (and a snapshot that said "synced" was
    /// already replaced durably, at load).
    func save(_ writer: WriterState, ledgerID: [UInt8], clean: Bool) throws {
        let voters = writer.state.voters.keys, keys = writer.idempotency.keyIndex
        if clean {
            do {
                try voters.sync()
                try keys.sync()
            } catch {
                throw LedgerError.tables(error)
            }
        }
        let header = KeptStateCodec.Header(
            ledgerID: ledgerID, events: writer.state.lastSeq, root: writer.frontier.root, lastTimestamp: writer.lastTimestamp,
            keySeed: writer.idempotency.seed, voterLayers: voterLayers.records(currentSlots: voters.slotCount),
            keyLayers: keyLayers.records(currentSlots: keys.slotCount), synced: clean, bootID: Self.bootID)
        let bytes = KeptStateCodec.encode(header, writer.state.image)
        try writeFile(snapshotPath, bytes, durable: clean)
        // Files of layers that a run has taken the place of: no snapshot names them now.
        voterLayers.removeUnusedFiles(keeping: header.voterLayers)
        keyLayers.removeUnusedFiles(keeping: header.keyLayers)
    }

    /// Why the last build of a run failed (a full disk), while it has not succeeded since: the
    /// tables still work (the frozen tables stay layers), but there are more of them each time.
    var buildError: TableError? { voterLayers.buildError ?? keyLayers.buildError }

    /// Waits for the runs being built and puts them in place (tests, and a close that wants
    /// the fewest layers on disk).
    func finishBuilding() {
        voterLayers.finishBuilding()
        keyLayers.finishBuilding()
    }

    // MARK: Files

    /// The snapshot's bytes; nil when there is none, or it cannot be read (then it is rebuilt).
    private func readFile(_ path: String) -> [UInt8]? { (try? ReplacedFile.read(path)) ?? nil }

    private func writeFile(_ path: String, _ bytes: [UInt8], durable: Bool) throws {
        do {
            try ReplacedFile.replace(path, with: bytes, durable: durable)
        } catch {
            throw LedgerError.tables(error)
        }
    }

    private func hex(_ bytes: [UInt8]) -> String { bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined() }
}
