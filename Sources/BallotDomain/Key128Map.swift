#if canImport(Glibc)
import Glibc
#endif

/// A 128-bit key, such as the first half of an HMAC or SHA-256 value.
@frozen
public struct Key128: Hashable, Sendable {
    public let a: UInt64
    public let b: UInt64
    @inlinable
    public init(a: UInt64, b: UInt64) {
        self.a = a
        self.b = b
    }
}

/// A map from 128-bit keys that are already uniformly random (HMAC or SHA-256 output) to small
/// plain values: open addressing with linear probing, at most half full. It holds the voters
/// who have voted (Value = Void, which takes no space) and the idempotency index (Value =
/// sequence number), each up to millions of entries, looked up once per vote.
///
/// Why not `Set` or `Dictionary`: the first word of a key is already a hash, so SipHash is
/// wasted work; and these tables are far larger than the caches, so every lookup misses. The
/// slots are reached through a plain pointer, touching no object and so doing no reference
/// counting on the lookup path. A copy shares the slots until either side is changed
/// (copy-on-write). See docs/performance.md for the measurements.
public struct Key128Map<Value: BitwiseCopyable & Sendable>: @unchecked Sendable {
    /// Owns the slots; shared between copies until one of them changes.
    @usableFromInline
    final class Storage {
        @usableFromInline private(set) var capacity: Int
        /// Pairs of words, slot i at 2i and 2i+1; (0, 0) marks an empty slot.
        @usableFromInline private(set) var keys: UnsafeMutablePointer<UInt64>
        @usableFromInline private(set) var values: UnsafeMutablePointer<Value>
        private var keyBlock: TableBlock
        private var valueBlock: TableBlock

        @usableFromInline
        init(capacity: Int) {
            self.capacity = capacity
            keyBlock = TableBlock(zeroedBytes: capacity * 16)
            valueBlock = TableBlock(zeroedBytes: max(capacity * MemoryLayout<Value>.stride, 1))
            keys = keyBlock.base.bindMemory(to: UInt64.self, capacity: capacity * 2)
            values = valueBlock.base.bindMemory(to: Value.self, capacity: capacity)
        }

        /// Doubles the slots where they are, the new half empty; false if there is no room.
        @usableFromInline
        func double() -> Bool {
            let valueBytes = max(capacity * 2 * MemoryLayout<Value>.stride, 1)
            guard keyBlock.canGrow(to: capacity * 32), valueBlock.canGrow(to: valueBytes) else { return false }
            keyBlock.grow(to: capacity * 32)
            valueBlock.grow(to: valueBytes)
            capacity *= 2
            keys = keyBlock.base.bindMemory(to: UInt64.self, capacity: capacity * 2)
            values = valueBlock.base.bindMemory(to: Value.self, capacity: capacity)
            return true
        }

        deinit {
            keyBlock.release()
            valueBlock.release()
        }
    }

    // The operations are @inlinable so that other modules get them specialised for their Value:
    // unspecialised generic code runs several times slower here.
    @usableFromInline var storage: Storage
    /// `storage.keys` and `storage.values`, kept here so that reading a slot touches no object.
    @usableFromInline var keys: UnsafeMutablePointer<UInt64>
    @usableFromInline var values: UnsafeMutablePointer<Value>
    @usableFromInline var mask: Int
    @usableFromInline var stored = 0
    /// The number of keys.
    @inlinable public var count: Int { stored }
    /// The all-zero key cannot be stored in a slot; its value is kept here.
    @usableFromInline var zeroValue: Value?
    /// What `prefetch` read, kept so that its loads cannot be optimised away.
    @usableFromInline var prefetched: UInt64 = 0

    @inlinable
    public init(capacity: Int = 1024) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        storage = Storage(capacity: size)
        keys = storage.keys
        values = storage.values
        mask = size - 1
    }

    @inlinable
    public subscript(key: Key128) -> Value? {
        if key.a == 0 && key.b == 0 { return zeroValue }
        let i = find(key)
        return isEmpty(i) ? nil : values[i]
    }

    @inlinable
    public func contains(_ key: Key128) -> Bool {
        if key.a == 0 && key.b == 0 { return zeroValue != nil }
        return !isEmpty(find(key))
    }

    /// Adds `key` with `value`; returns false (and changes nothing) if it was already there.
    @inlinable @discardableResult
    public mutating func insert(_ key: Key128, _ value: Value) -> Bool {
        if key.a == 0 && key.b == 0 {
            guard zeroValue == nil else { return false }
            zeroValue = value
            stored += 1
            return true
        }
        if (count + 1) * 2 > mask + 1 {
            if isKnownUniquelyReferenced(&storage) && storage.double() {
                rehashAfterDoubling()
            } else {
                resize(to: (mask + 1) * 2)
            }
        } else if !isKnownUniquelyReferenced(&storage) {
            resize(to: mask + 1)
        }
        let i = find(key)
        guard isEmpty(i) else { return false }
        keys[2 * i] = key.a
        keys[2 * i + 1] = key.b
        values[i] = value
        stored += 1
        return true
    }

    /// Reads the first slot each key would probe, so that lookups of those keys soon after find
    /// it in cache. These loads do not depend on one another, so the processor overlaps their
    /// cache misses instead of taking them one at a time as lookups in turn would; on a table
    /// far larger than the caches a batch of lookups runs several times faster after this.
    @inlinable
    public mutating func prefetch(_ batch: some Sequence<Key128>) {
        var fold: UInt64 = 0
        for key in batch { fold ^= keys[2 * (Int(truncatingIfNeeded: key.a) & mask)] }
        prefetched = fold
    }

    @inlinable
    func isEmpty(_ i: Int) -> Bool { keys[2 * i] == 0 && keys[2 * i + 1] == 0 }

    /// The slot holding `key`, or the empty slot where it would go.
    @inlinable
    func find(_ key: Key128) -> Int {
        var i = Int(truncatingIfNeeded: key.a) & mask
        while true {
            let a = keys[2 * i], b = keys[2 * i + 1]
            if (a == key.a && b == key.b) || (a == 0 && b == 0) { return i }
            i = (i + 1) & mask
        }
    }

    /// Puts every entry where it belongs now that the storage has doubled in place, so that no
    /// second table is ever held beside the first (for a million keys that is 16 to 24 MB less
    /// at the peak). Each entry goes to the first slot from its new home that is empty or holds
    /// an entry not yet placed; with the latter it swaps, and the entry swapped in is placed
    /// next. Placed entries never move again, so no lookup path gets a hole: the way swiss
    /// tables drop their tombstones in place.
    @usableFromInline
    mutating func rehashAfterDoubling() {
        let oldSlots = (mask + 1)
        keys = storage.keys
        values = storage.values
        mask = oldSlots * 2 - 1
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
            var j = Int(truncatingIfNeeded: keys[2 * i]) & mask
            while !isEmpty(j) && isPlaced(j) { j = (j + 1) & mask }
            if j == i {
                place(i)
                i += 1
            } else if isEmpty(j) {
                keys[2 * j] = keys[2 * i]
                keys[2 * j + 1] = keys[2 * i + 1]
                values[j] = values[i]
                keys[2 * i] = 0
                keys[2 * i + 1] = 0
                place(j)
                i += 1
            } else {
                (keys[2 * j], keys[2 * i]) = (keys[2 * i], keys[2 * j])
                (keys[2 * j + 1], keys[2 * i + 1]) = (keys[2 * i + 1], keys[2 * j + 1])
                (values[j], values[i]) = (values[i], values[j])
                place(j)
            }
        }
    }

    /// Moves every entry into fresh storage of `size` slots (also how a shared copy is unshared).
    @usableFromInline
    mutating func resize(to size: Int) {
        var fresh = Key128Map(capacity: size / 2)
        for i in 0...mask where !isEmpty(i) {
            let j = fresh.find(Key128(a: keys[2 * i], b: keys[2 * i + 1]))
            fresh.keys[2 * j] = keys[2 * i]
            fresh.keys[2 * j + 1] = keys[2 * i + 1]
            fresh.values[j] = values[i]
        }
        fresh.stored = stored
        fresh.zeroValue = zeroValue
        self = fresh
    }
}

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

    let base: UnsafeMutableRawPointer
    private(set) var bytes: Int
    /// The address space held for growth; 0 for memory from the allocator.
    let reserved: Int

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

    func canGrow(to newBytes: Int) -> Bool { newBytes <= max(bytes, reserved) }

    /// Extends the block in place; the new bytes are zero. Only when `canGrow`.
    mutating func grow(to newBytes: Int) {
        precondition(canGrow(to: newBytes), "a table grew past its reservation")
        guard newBytes > bytes else { return }
        makeUsable(bytes..<newBytes)
        bytes = newBytes
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
