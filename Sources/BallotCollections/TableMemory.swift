#if canImport(Glibc)
import Glibc
#endif

/// Zeroed memory for a table. A large one comes straight from the kernel: fresh anonymous
/// pages are already zero, so nothing is written twice, and they are marked for transparent
/// huge pages, so that a lookup that misses every cache (each one does, past a few MB) does not
/// miss the TLB as well. It sits at the start of a reservation of address space (no memory)
/// 64 times its size, so that it can double where it is. docs/performance.md has the
/// measurements.
@usableFromInline
struct TableBlock {
    /// Below this, the allocator's own zeroed memory.
    static let pageMappedFrom = 2 << 20
    static let reservationFactor = 64

    private(set) var base: UnsafeMutableRawPointer
    private(set) var bytes: Int
    /// The address space held for growth; 0 for memory from the allocator.
    private(set) var reserved: Int

    init(zeroedBytes: Int) {
        bytes = zeroedBytes
        if zeroedBytes < Self.pageMappedFrom {
            guard let p = calloc(1, zeroedBytes) else { fatalError("out of memory: a table of \(zeroedBytes) bytes") }
            base = p
            reserved = 0
            return
        }
        reserved = zeroedBytes * Self.reservationFactor
        let p = mmap(nil, reserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let p, p != MAP_FAILED else { fatalError("out of address space: a table reservation of \(reserved) bytes (errno \(errno))") }
        base = p
        makeUsable(0..<zeroedBytes)
    }

    /// Extends the block to `newBytes`, keeping its contents; the new bytes are zero. Within
    /// the reservation the block stays where it is and nothing is copied; a block from the
    /// allocator, or one past its reservation, moves to a new block (`base` changes).
    mutating func grow(to newBytes: Int) {
        guard newBytes > bytes else { return }
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

    func release() {
        if reserved == 0 { free(base) } else { munmap(base, reserved) }
    }
}

/// Puts every entry of an open-addressing table with linear probing where it belongs after the
/// table doubled in place (the old entries in the first half, the second half empty): no second
/// table is ever held beside the first, which for a million keys is 16 MB or more less at the
/// peak. Each entry goes to the first slot from its new home that is empty or holds an entry
/// not yet placed; with the latter it swaps, and the entry swapped in is placed next. Placed
/// entries never move again, so no lookup path gets a hole: the way swiss tables drop their
/// tombstones in place. `home` is a slot's home in the doubled table; `move` moves an entry to
/// an empty slot and empties the one it left.
@inlinable
func rehashAfterDoubling(oldSlots: Int, isEmpty: (Int) -> Bool, home: (Int) -> Int,
                         move: (_ from: Int, _ to: Int) -> Void, swap: (Int, Int) -> Void) {
    let mask = oldSlots * 2 - 1
    var placed = [UInt64](repeating: 0, count: (oldSlots * 2 + 63) / 64)
    func isPlaced(_ i: Int) -> Bool { placed[i >> 6] & (1 << UInt64(i & 63)) != 0 }
    func place(_ i: Int) { placed[i >> 6] |= 1 << UInt64(i & 63) }
    // Entries not yet placed all lie at i or above, in the old half.
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
/// home does not lie cyclically in (hole, entry] is moved back into the hole, which moves on to
/// where that entry was (Knuth's algorithm R). No tombstones, so a table that takes back a
/// batch's additions is the table it was, as far as any lookup can tell. `move` moves an entry
/// to an empty slot and empties the one it left; `clear` empties a slot.
@inlinable
func removeShiftingBack(slot: Int, slots: Int, isEmpty: (Int) -> Bool, home: (Int) -> Int,
                        move: (_ from: Int, _ to: Int) -> Void, clear: (Int) -> Void) {
    let mask = slots - 1
    var hole = slot
    clear(hole)
    var j = (hole + 1) & mask
    while !isEmpty(j) {
        let h = home(j)
        // Whether the entry at j may stay: its home lies after the hole, up to j itself.
        let stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j)
        if !stays {
            move(j, hole)
            hole = j
        }
        j = (j + 1) & mask
    }
}
