import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
public import BallotDomain

/// Publishes a ledger as a tiled transparency log (c2sp.org/tlog-tiles) in a directory that any
/// web server or CDN can serve as it is: hash tiles, entry bundles holding the records as stored
/// (docs/ledger-format.md; a record holds a voter's key, never the voter's id), and the
/// checkpoint note. Incremental: what a published checkpoint's tiles already hold is not
/// written again.
///
/// Level-0 tiles are the leaf hashes of the records read for the bundles; the levels above
/// are the ledger's stored nodes (level 8·L). Every file is written beside and renamed into
/// place, the tiles are synced before the checkpoint that needs them is replaced, so a client
/// that reads the checkpoint finds every tile it names.
public struct TileWriter: Sendable {
    public let directory: String
    let reader: LedgerReader

    public init(directory: String, reader: LedgerReader) {
        self.directory = directory
        self.reader = reader
    }

    public struct Update: Sendable, Equatable {
        /// The size whose tiles were there already (0 when none, or when they were another history's).
        public var from: UInt64
        /// How many entries the bundles hold now (less than the size while they are withheld).
        public var entries: UInt64
        /// A published checkpoint that this ledger does not extend, replaced (a rollback shows so).
        public var replaced: CheckpointNote?
        public var files: Int

        public init(from: UInt64, entries: UInt64, replaced: CheckpointNote?, files: Int) {
            self.from = from
            self.entries = entries
            self.replaced = replaced
            self.files = files
        }
    }

    /// The checkpoint published in the directory, nil if there is none (or it does not read).
    public func published() -> CheckpointNote? {
        guard let bytes = try? ReplacedFile.read(directory + "/checkpoint"), let note = try? SignedNote(parsing: bytes) else { return nil }
        return try? CheckpointNote(text: note.text)
    }

    /// Writes the tiles `note`'s tree needs that the published checkpoint's did not, then
    /// publishes `note` (with whatever signatures and cosignatures it carries). A published
    /// checkpoint this ledger does not extend (another history's) is replaced from size 0.
    /// Without `entries` the bundles are withheld (the daemon's, while an election's votes are
    /// sealed: a bundle holds each vote's nominee), and written by a later update that has them.
    public func update(to note: SignedNote, entries: Bool = true) throws -> Update {
        let checkpoint: CheckpointNote
        do { checkpoint = try CheckpointNote(text: note.text) } catch { throw TileError("the note to publish: \(error)") }
        guard try reader.root(size: checkpoint.size).root == checkpoint.root else {
            throw TileError("the checkpoint of size \(checkpoint.size) has a root this ledger's first \(checkpoint.size) events do not give")
        }
        var from: UInt64 = 0
        var replaced: CheckpointNote?
        if let published = published() {
            if published.size <= checkpoint.size, try reader.root(size: published.size).root == published.root {
                from = published.size
            } else {
                // Another history's tiles (a restored backup, or an older checkpoint asked
                // for): none of them may stay beside this ledger's, bundles least of all.
                replaced = published
                try removeTiles()
            }
        }
        let entriesFrom = replaced == nil ? bundledEntries(upTo: from) : 0
        let files = try writeTiles(size: checkpoint.size, from: from, entriesFrom: entries ? entriesFrom : nil)
        try publish(note)
        return Update(from: from, entries: entries ? checkpoint.size : entriesFrom, replaced: replaced, files: files)
    }

    /// How many entries the bundles in the directory hold, of a tree of `size`: bundles are
    /// written in order, so those there are a prefix, found by bisection.
    func bundledEntries(upTo size: UInt64) -> UInt64 {
        let exists = { (tile: TileLayout.Tile) in FileManager.default.fileExists(atPath: directory + "/" + tile.path) }
        if let last = TileLayout.newTiles(level: nil, oldSize: 0, size: size).last, exists(last) { return size }
        var (present, absent) = (UInt64(0), size / TileLayout.width)   // full bundles: [0, present) there, absent not
        while present < absent {
            let mid = (present + absent) / 2
            if exists(TileLayout.Tile(level: nil, index: mid, width: Int(TileLayout.width))) { present = mid + 1 } else { absent = mid }
        }
        return present * TileLayout.width
    }

    /// Writes the tiles a tree of `size` events has that one of `from` did not, and the entry
    /// bundles from `entriesFrom` on (none when nil).
    public func writeTiles(size: UInt64, from: UInt64, entriesFrom: UInt64? = nil) throws -> Int {
        var files = 0
        let bundles = Set(entriesFrom.map { TileLayout.newTiles(level: nil, oldSize: $0, size: size) } ?? [])
        let wanted = Set(TileLayout.newTiles(level: nil, oldSize: from, size: size)).union(bundles).sorted { $0.index < $1.index }
        for bundle in wanted {
            let start = bundle.index * TileLayout.width
            var entries: [UInt8] = []
            var leaves: [UInt8] = []
            leaves.reserveCapacity(bundle.width * TileLayout.hashBytes)
            var seen = 0
            try reader.scan(from: start + 1) { seq, bytes, _ in
                guard seq == start + 1 + UInt64(seen) else { throw TileError("event \(start + 1 + UInt64(seen)) is missing from the ledger") }
                guard bytes.count <= TileLayout.maxEntryBytes else {
                    throw TileError("event \(seq) is \(bytes.count) bytes; an entry bundle holds entries of at most \(TileLayout.maxEntryBytes) bytes (c2sp.org/tlog-tiles)")
                }
                if bundles.contains(bundle) {
                    entries += [UInt8(bytes.count >> 8), UInt8(bytes.count & 0xFF)]
                    entries += bytes
                }
                MerkleHash.leaf(bytes).withBytes { leaves += $0 }
                seen += 1
                return seen < bundle.width
            }
            guard seen == bundle.width else { throw TileError("the ledger ends at event \(start + UInt64(seen)), before \(start + UInt64(bundle.width))") }
            if bundles.contains(bundle) {
                try write(bundle, entries)
                files += 1
            }
            if bundle.index * TileLayout.width + UInt64(bundle.width) > from {
                try write(TileLayout.Tile(level: 0, index: bundle.index, width: bundle.width), leaves)
                files += 1
            }
        }
        for level in TileLayout.levels(size: size) where level > 0 {
            for tile in TileLayout.newTiles(level: level, oldSize: from, size: size) {
                let hashes = try reader.nodes(level: 8 * level, from: tile.index * TileLayout.width, count: tile.width)
                var bytes: [UInt8] = []
                bytes.reserveCapacity(tile.width * TileLayout.hashBytes)
                for hash in hashes { hash.withBytes { bytes += $0 } }
                try write(tile, bytes)
                files += 1
            }
        }
        if files > 0 { try syncDirectory() }
        return files
    }

    /// Replaces the checkpoint (durably: the tiles it needs are synced before).
    public func publish(_ note: SignedNote) throws {
        try makeDirectory(directory)
        do {
            try ReplacedFile.replace(directory + "/checkpoint", with: Array(note.serialized.utf8), durable: true, mode: 0o644)
        } catch {
            throw TileError("cannot write \(directory)/checkpoint: \(error)")
        }
    }

    private func removeTiles() throws {
        let tiles = directory + "/tile"
        guard FileManager.default.fileExists(atPath: tiles) else { return }
        do {
            try FileManager.default.removeItem(atPath: tiles)
        } catch {
            throw TileError("cannot remove the tiles of another history in \(tiles): \(error)")
        }
    }

    private func write(_ tile: TileLayout.Tile, _ bytes: [UInt8]) throws {
        let path = directory + "/" + tile.path
        try makeDirectory(String(path[..<path.lastIndex(of: "/")!]))
        do {
            try ReplacedFile.replace(path, with: bytes, durable: false, mode: 0o644)
        } catch {
            throw TileError("cannot write \(path): \(error)")
        }
    }

    private func makeDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw TileError("cannot make the directory \(path): \(error)")
        }
    }

    /// One sync of the file system the tiles are on, rather than one per file.
    private func syncDirectory() throws {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw TileError("cannot open \(directory): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard syncfs(fd) == 0 else { throw TileError("cannot sync \(directory): \(String(cString: strerror(errno)))") }
    }
}

public struct TileError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Linux's syncfs(2), which Glibc's Swift module leaves out (a GNU extension).
@_silgen_name("syncfs") private func syncfs(_ fd: Int32) -> Int32
