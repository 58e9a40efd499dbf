import Foundation
import Logging
import BallotFormat

/// Keeps a tiles directory (c2sp.org/tlog-tiles, `tiles_dir`) up to date on a thread of its
/// own: the writer hands it each checkpoint's note, the witnesses' cosigner the same note with
/// its cosignatures, and it writes the new tiles, then the checkpoint. Only the newest note
/// waits; one smaller than a note already handed over is ignored, so that the published
/// checkpoint never goes back, and a note of the same size replaces it only with more
/// signatures (its cosignatures). While an election is sealed the entry bundles are withheld;
/// the first update after the last one closes writes them.
final class TilePublisher: @unchecked Sendable {
    private let writer: TileWriter
    private let logger: Logger
    private let condition = NSCondition()
    private var pending: SignedNote?
    private var offered: (size: UInt64, signatures: Int)?
    private var stopping = false
    private let stopped = DispatchSemaphore(value: 0)
    /// Whether the entry bundles may be written now: not while an election's standings are
    /// sealed (a bundle holds each vote's nominee; the hash tiles reveal nothing). Set before
    /// `start`.
    var entriesArePublic: @Sendable () -> Bool = { true }

    init(writer: TileWriter, logger: Logger) {
        self.writer = writer
        self.logger = logger
    }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "ballotd-tiles"
        thread.start()
    }

    /// Hands over a note to publish; never blocks on the writing.
    func offer(_ note: SignedNote) {
        guard let size = try? CheckpointNote(text: note.text).size else { return }
        condition.lock()
        defer { condition.unlock() }
        if let offered, size < offered.size || (size == offered.size && note.signatures.count <= offered.signatures) { return }
        offered = (size, note.signatures.count)
        pending = note
        condition.signal()
    }

    private func setLast(_ note: SignedNote, incomplete: Bool) {
        condition.lock()
        last = (note, incomplete)
        condition.unlock()
    }

    /// Publishes what is pending, then ends the thread.
    func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
        stopped.wait()
    }

    /// The last note published, and whether it went out incomplete (its bundles withheld, or
    /// its writing failed): then it is tried again every `retry`, so that the bundles follow
    /// once voting closes by its time, with nothing new appended.
    private var last: (note: SignedNote, incomplete: Bool)?
    static let retry: TimeInterval = 30

    private func run() {
        while true {
            condition.lock()
            while pending == nil && !stopping {
                if let last, last.incomplete {
                    if !condition.wait(until: Date().addingTimeInterval(Self.retry)) && pending == nil { pending = last.note }
                } else {
                    condition.wait()
                }
            }
            let note = pending
            pending = nil
            let done = stopping && note == nil
            condition.unlock()
            if done { break }
            guard let note else { continue }
            do {
                let update = try writer.update(to: note, entries: entriesArePublic())
                let size = (try? CheckpointNote(text: note.text).size) ?? 0
                setLast(note, incomplete: update.entries < size)
                if let replaced = update.replaced {
                    logger.critical("the tiles directory held a checkpoint this ledger does not extend; every tile was written again", metadata: [
                        "tiles.dir": "\(writer.directory)", "replaced.size": "\(replaced.size)"])
                }
                logger.debug("tiles published", metadata: ["tiles.dir": "\(writer.directory)", "tiles.files": "\(update.files)",
                                                           "tiles.entries": "\(update.entries)",
                                                           "checkpoint.signatures": "\(note.signatures.count)"])
            } catch {
                setLast(note, incomplete: true)
                logger.error("cannot publish the tiles", metadata: ["tiles.dir": "\(writer.directory)", "error": "\(error)"])
            }
        }
        stopped.signal()
    }
}
