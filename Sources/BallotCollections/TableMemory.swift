#if canImport(Glibc)
import Glibc
#endif

/// Why a table's memory could not be had: the call, what it was for, and errno.
public struct TableError: Error, Sendable, CustomStringConvertible {
    public let call: String
    public let what: String
    public let errno: Int32

    /// The file system is full (or over quota): more room, not a repair, fixes it.
    public var isStorageFull: Bool { errno == ENOSPC || errno == EDQUOT }

    public var description: String { "\(call) failed \(what): \(String(cString: strerror(errno))) (errno \(errno))" }

    public init(call: String, what: String, errno: Int32) {
        self.call = call
        self.what = what
        self.errno = errno
    }
}

/// A file a table keeps its slots in, so that they outlive the process and are not anonymous
/// memory: the kernel pages them in and out like any file. The caller owns the descriptor.
public struct TableFile: Sendable {
    public let descriptor: Int32
    /// For messages only.
    public let path: String

    public init(descriptor: Int32, path: String) {
        self.descriptor = descriptor
        self.path = path
    }
}

/// Zeroed memory for a table, anonymous or in a file. Anonymous memory comes straight from the
/// kernel when large: fresh pages are already zero, so nothing is written twice, and they are
/// marked for transparent huge pages, so that a lookup that misses every cache (each one does,
/// past a few MB) does not miss the TLB as well. File memory is the file mapped shared, its
/// room allocated up front (`posix_fallocate`), so that a write to a page never finds the disk full
/// (which would be SIGBUS, not an error). Either sits at the start of a reservation of address
/// space (no memory) far larger than itself, so that it can double where it is.
/// docs/performance.md has the measurements.
@usableFromInline
struct TableBlock {
    /// Below this, the allocator's own zeroed memory (anonymous blocks only).
    static let pageMappedFrom = 2 << 20
    static let reservationFactor = 64
    /// A file's reservation: 64 GiB of address space, nothing of memory (the largest table, 2^31
    /// slots of 16 bytes, is 32 GiB; a table's layers each keep one: `TableLayers`).
    static let fileReservation = 1 << 36

    private(set) var base: UnsafeMutableRawPointer
    private(set) var bytes: Int
    /// The address space held for growth; 0 for memory from the allocator.
    private(set) var reserved: Int
    private let file: TableFile?

    init(zeroedBytes: Int) {
        bytes = zeroedBytes
        file = nil
        if zeroedBytes < Self.pageMappedFrom {
            guard let p = calloc(1, zeroedBytes) else { fatalError("out of memory: a table of \(zeroedBytes) bytes") }
            base = p
            reserved = 0
            return
        }
        reserved = zeroedBytes * Self.reservationFactor
        base = Self.reserve(reserved)
        makeUsable(0..<zeroedBytes)
    }

    /// The size of a page: a file is mapped, and grows, in whole pages.
    static let pageBytes = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// The first `bytes` of `file` (whole pages), which is extended (with zeros) if shorter.
    init(file: TableFile, bytes: Int) throws(TableError) {
        guard bytes > 0 && bytes % Self.pageBytes == 0 && bytes <= Self.fileReservation else {
            throw TableError(call: "mapping", what: "of \(file.path): a table in a file is whole pages, not \(bytes) bytes", errno: EINVAL)
        }
        self.file = file
        self.bytes = 0
        reserved = Self.fileReservation
        base = Self.reserve(reserved)
        do {
            try mapFile(0..<bytes)
        } catch {
            munmap(base, reserved)
            throw error
        }
        self.bytes = bytes
    }

    private static func reserve(_ bytes: Int) -> UnsafeMutableRawPointer {
        let p = mmap(nil, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let p, p != MAP_FAILED else { fatalError("out of address space: a table reservation of \(bytes) bytes (errno \(errno))") }
        return p
    }

    var isFileBacked: Bool { file != nil }

    /// Extends the block to `newBytes`, keeping its contents; the new bytes are zero. Within
    /// the reservation the block stays where it is and nothing is copied; an anonymous block
    /// from the allocator, or one past its reservation, moves to a new block (`base` changes).
    /// Only a file can fail (its disk is full).
    mutating func grow(to newBytes: Int) throws(TableError) {
        guard newBytes > bytes else { return }
        if let file {
            guard newBytes <= reserved else {
                throw TableError(call: "growing", what: "\(file.path) past its reservation of \(reserved) bytes", errno: EFBIG)
            }
            try mapFile(bytes..<newBytes)
            bytes = newBytes
            return
        }
        if newBytes <= reserved {
            makeUsable(bytes..<newBytes)
            bytes = newBytes
            return
        }
        let moved = TableBlock(zeroedBytes: newBytes)
        moved.base.copyMemory(from: base, byteCount: bytes)
        release()
        self = moved
    }

    private func makeUsable(_ range: Range<Int>) {
        guard mprotect(base + range.lowerBound, range.count, PROT_READ | PROT_WRITE) == 0 else {
            fatalError("out of memory: a table of \(range.upperBound) bytes (errno \(errno))")
        }
        _ = madvise(base + range.lowerBound, range.count, MADV_HUGEPAGE)  // a hint: without it the table still works
    }

    /// Gives `range` of the file room on disk (zeros where it had none) and maps it in place.
    private func mapFile(_ range: Range<Int>) throws(TableError) {
        guard let file, !range.isEmpty else { return }
        var st = stat()
        guard fstat(file.descriptor, &st) == 0 else { throw TableError(call: "fstat", what: "of \(file.path)", errno: errno) }
        // Allocating keeps what the file holds and gives the rest blocks, so that a shared
        // write never meets a full disk later (posix_fallocate returns the error number).
        if Int(st.st_size) < range.upperBound || st.st_blocks * 512 < range.upperBound {
            let e = posix_fallocate(file.descriptor, off_t(range.lowerBound), off_t(range.count))
            guard e == 0 else { throw TableError(call: "posix_fallocate", what: "of \(range.upperBound) bytes for \(file.path)", errno: e) }
        }
        let p = mmap(base + range.lowerBound, range.count, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, file.descriptor,
                     off_t(range.lowerBound))
        guard let p, p != MAP_FAILED else {
            throw TableError(call: "mmap", what: "of \(range.count) bytes of \(file.path)", errno: errno)
        }
    }

    /// Writes a file-backed block's dirty pages to disk and waits (nothing for anonymous memory).
    func sync() throws(TableError) {
        guard let file, bytes > 0 else { return }
        guard msync(base, bytes, MS_SYNC) == 0 else { throw TableError(call: "msync", what: "of \(file.path)", errno: errno) }
    }

    func release() {
        if reserved == 0 { free(base) } else { munmap(base, reserved) }
    }

    /// The pages of an anonymous block of its own mapping; nil for a file's block or one from
    /// the allocator.
    var anonymousPages: TablePages? {
        file == nil && reserved > 0 ? TablePages(address: UInt(bitPattern: base), bytes: bytes) : nil
    }
}

/// The pages of a table in anonymous memory of its own mapping, to be faulted in (`populate`) on
/// another thread than the one that fills the table. A fresh page costs the kernel a zeroing on
/// its first write, and a table filled at random places first maps the shared zero page on a
/// read, then copies it on the write; populating does each page once, in order. For the audit's
/// tables at ten million votes (512 MB) it took a quarter of the rule pass's time
/// (docs/performance.md). A plain address, so that it can go to that thread: populating changes
/// no byte. Only if the table had moved meanwhile (past its reservation, 64 times its first
/// size) could the range be another mapping's, whose pages would then be faulted in, unchanged.
package struct TablePages: Sendable {
    let address: UInt
    let bytes: Int

    /// Faults the pages in, zeroed, as writes would (`MADV_POPULATE_WRITE`, Linux 5.14; on an
    /// older kernel it fails, and each page is faulted in where it is first written, as before),
    /// 64 MB at a time until done or until `stop` says so.
    package func populate(until stop: () -> Bool = { false }) {
        guard let base = UnsafeMutableRawPointer(bitPattern: address) else { return }
        var offset = 0
        while offset < bytes && !stop() {
            let n = min(64 << 20, bytes - offset)
            _ = madvise(base + offset, n, 23 /* MADV_POPULATE_WRITE */)
            offset += n
        }
    }
}

/// The slots of an open-addressing table, as 64-bit words (one or two a slot), all zero when
/// empty, in a `TableBlock` that doubles in place; and the table's count of entries. Shared by
/// `TaggedKeySet` and `SequenceIndex`.
///
/// In a file, the first page is a header (docs/ledger-format.md, "Kept state"): "BLTABLE1",
/// the bytes of a slot (u64), the count of entries (u64, native order), then the slots. The
/// count lives there, in the shared mapping, so that it is exact after the death of the process
/// (a table raises it before it fills a slot, so at worst it is one too high).
@usableFromInline
struct TableWords {
    private(set) var block: TableBlock
    @usableFromInline private(set) var words: UnsafeMutablePointer<UInt64>
    /// The count of entries: in the file's header, or in memory of its own.
    @usableFromInline let count: UnsafeMutablePointer<Int>
    /// Where the slots begin in the block: 0 in memory, one page in a file.
    private let offset: Int

    static let magic = Array("BLTABLE1".utf8)

    init(words n: Int) {
        block = TableBlock(zeroedBytes: n * 8)
        words = block.base.bindMemory(to: UInt64.self, capacity: n)
        count = .allocate(capacity: 1)
        count.initialize(to: 0)
        offset = 0
    }

    /// The table in `file`: `n` words of slots of `slotBytes` each after the header, made if the
    /// file is empty; a file with another header is refused.
    init(words n: Int, slotBytes: Int, file: TableFile) throws(TableError) {
        var st = stat()
        guard fstat(file.descriptor, &st) == 0 else { throw TableError(call: "fstat", what: "of \(file.path)", errno: errno) }
        let fresh = st.st_size == 0
        offset = TableBlock.pageBytes
        block = try TableBlock(file: file, bytes: offset + n * 8)
        let header = block.base
        if fresh {
            Self.magic.withUnsafeBytes { header.copyMemory(from: $0.baseAddress!, byteCount: 8) }
            header.storeBytes(of: UInt64(slotBytes), toByteOffset: 8, as: UInt64.self)
            header.storeBytes(of: 0, toByteOffset: 16, as: Int.self)
        } else if !Self.magic.withUnsafeBytes({ memcmp(header, $0.baseAddress!, 8) == 0 })
                    || header.load(fromByteOffset: 8, as: UInt64.self) != UInt64(slotBytes) {
            block.release()
            throw TableError(call: "mapping", what: "of \(file.path): it is not a table of \(slotBytes)-byte slots", errno: EINVAL)
        }
        words = (block.base + offset).bindMemory(to: UInt64.self, capacity: n)
        count = (block.base + 16).bindMemory(to: Int.self, capacity: 1)
        // The count is not covered by any digest: one the table cannot hold would make it never
        // grow (and a lookup never end) or trap in arithmetic.
        let slots = n * 8 / slotBytes
        guard count.pointee >= 0 && count.pointee <= slots else {
            let found = count.pointee
            block.release()
            throw TableError(call: "mapping", what: "of \(file.path): its header counts \(found) entries in \(slots) slots", errno: EINVAL)
        }
    }

    /// The bytes a file of `n` words of slots takes.
    static func fileBytes(words n: Int) -> Int { TableBlock.pageBytes + n * 8 }

    var isFileBacked: Bool { block.isFileBacked }

    mutating func grow(toWords n: Int) throws(TableError) {
        try block.grow(to: offset + n * 8)
        words = (block.base + offset).bindMemory(to: UInt64.self, capacity: n)
    }

    func sync() throws(TableError) { try block.sync() }

    func release() {
        if !block.isFileBacked { count.deallocate() }
        block.release()
    }

    var anonymousPages: TablePages? { block.anonymousPages }
}

/// Puts every entry of an open-addressing table with linear probing where it belongs after the
/// table grew in place from `oldSlots` to `newSlots` (a power of two times as many: the old
/// entries in the first part, the rest empty), in one pass however many times it doubled: no
/// second table is ever held beside the first, which for a million keys is 16 MB or more less at
/// the peak. Each entry goes to the first slot from its new home that is empty or holds an entry
/// not yet placed; with the latter it swaps, and the entry swapped in is placed next. Placed
/// entries never move again, so no lookup path gets a hole: the way swiss tables drop their
/// tombstones in place. `home` is a slot's home in the grown table; `move` moves an entry to
/// an empty slot and empties the one it left.
@inlinable
func rehashAfterGrowing(oldSlots: Int, newSlots: Int, isEmpty: (Int) -> Bool, home: (Int) -> Int,
                        move: (_ from: Int, _ to: Int) -> Void, swap: (Int, Int) -> Void) {
    let mask = newSlots - 1
    var placed = [UInt64](repeating: 0, count: (newSlots + 63) / 64)
    func isPlaced(_ i: Int) -> Bool { placed[i >> 6] & (1 << UInt64(i & 63)) != 0 }
    func place(_ i: Int) { placed[i >> 6] |= 1 << UInt64(i & 63) }
    // Entries not yet placed all lie at i or above, in the old part.
    var i = 0
    while i < oldSlots {
        if isEmpty(i) || isPlaced(i) {
            i += 1
            continue
        }
        var j = home(i)
        while !isEmpty(j) && isPlaced(j) { j = (j + 1) & mask }
        if j == i {
            place(i)
            i += 1
        } else if isEmpty(j) {
            move(i, j)
            place(j)
            i += 1
        } else {
            swap(i, j)
            place(j)
        }
    }
}

/// Empties slot `slot` of a linear-probing table of `slots` slots (a power of two) without
/// leaving a hole in any probe path: each entry after it, up to the next empty slot, whose
/// home does not lie cyclically in (hole, entry] is copied back into the hole, which moves on
/// to where that entry was (Knuth's algorithm R); only the last hole is emptied, at the end. No
/// tombstones, so a table that takes back a batch's additions is the table it was, as far as
/// any lookup can tell; and at every moment between (a table in a file may be left at any of
/// them by the death of the process) every probe path stays whole: the slot emptied is never
/// one an entry still needs, at worst an entry is in two slots. `copy` copies an entry into a
/// slot (over whatever it held); `clear` empties a slot.
@inlinable
func removeShiftingBack(slot: Int, slots: Int, isEmpty: (Int) -> Bool, home: (Int) -> Int,
                        copy: (_ from: Int, _ to: Int) -> Void, clear: (Int) -> Void) {
    let mask = slots - 1
    var hole = slot
    var j = (hole + 1) & mask
    while !isEmpty(j) {
        let h = home(j)
        // Whether the entry at j may stay: its home lies after the hole, up to j itself.
        let stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j)
        if !stays {
            copy(j, hole)
            hole = j
        }
        j = (j + 1) & mask
    }
    clear(hole)
}
