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
/// who have voted (Value = Void, which takes no space), up to millions of entries, looked up
/// once per vote. (The idempotency index, whose hits are checked against the event anyway,
/// keeps less of each key: `SequenceIndex`.)
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
            valueBlock = TableBlock(zeroedBytes: Self.valueBytes(capacity))
            keys = keyBlock.base.bindMemory(to: UInt64.self, capacity: capacity * 2)
            values = valueBlock.base.bindMemory(to: Value.self, capacity: Self.valueSlots(capacity))
        }

        /// A value of no size (a set's Void) is never stored or loaded (its stride is 1, but a
        /// store of it touches no memory), so it takes one byte in all, not one per slot.
        static func valueSlots(_ capacity: Int) -> Int { MemoryLayout<Value>.size == 0 ? 1 : capacity }
        static func valueBytes(_ capacity: Int) -> Int { valueSlots(capacity) * MemoryLayout<Value>.stride }

        /// The bytes the values take (tests check that a set's stay at one).
        var valueBlockBytes: Int { valueBlock.bytes }

        /// Doubles the slots, the new half empty; what was in the old half stays where it was.
        @usableFromInline
        func double() {
            capacity *= 2
            keyBlock.grow(to: capacity * 16)
            valueBlock.grow(to: Self.valueBytes(capacity))
            keys = keyBlock.base.bindMemory(to: UInt64.self, capacity: capacity * 2)
            values = valueBlock.base.bindMemory(to: Value.self, capacity: Self.valueSlots(capacity))
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
    /// How many times every entry was copied into fresh storage: only when a shared copy is
    /// changed, never when a table that is not shared grows (tests check this).
    @usableFromInline var copies = 0

    @inlinable
    public init(capacity: Int = 1024) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        storage = Storage(capacity: size)
        keys = storage.keys
        values = storage.values
        mask = size - 1
    }

    /// Makes room for `count` keys in all, so that the table does not grow (and move its
    /// entries) while they arrive. Meant for an empty table, which is simply replaced; a table
    /// with entries moves them into fresh storage, which counts in `copies`.
    public mutating func reserve(_ count: Int) {
        guard count * 2 > mask + 1 else { return }
        if stored == 0 {
            self = Key128Map(capacity: count)
        } else {
            var size = mask + 1
            while size < count * 2 { size <<= 1 }
            resize(to: size)
        }
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
        if key.a != 0 || key.b != 0 { makeRoom(for: 1) }
        return insertInRoom(key, value)
    }

    /// `insert(_:_:)` into a table that has room and holds its storage alone.
    @inlinable
    mutating func insertInRoom(_ key: Key128, _ value: Value) -> Bool {
        if key.a == 0 && key.b == 0 {
            guard zeroValue == nil else { return false }
            zeroValue = value
            stored += 1
            return true
        }
        let i = find(key)
        guard isEmpty(i) else { return false }
        keys[2 * i] = key.a
        keys[2 * i + 1] = key.b
        values[i] = value
        stored += 1
        return true
    }

    /// Removes `key`; returns false if it was not there. (How a batch whose transaction failed
    /// takes back the voters it added: see `removeShiftingBack`.)
    @discardableResult
    public mutating func remove(_ key: Key128) -> Bool {
        if key.a == 0 && key.b == 0 {
            guard zeroValue != nil else { return false }
            zeroValue = nil
            stored -= 1
            return true
        }
        makeRoom(for: 0)   // unshares the storage
        let slot = find(key)
        guard !isEmpty(slot) else { return false }
        let keys = keys, values = values, mask = mask
        BallotCollections.removeShiftingBack(
            slot: slot, slots: mask + 1, isEmpty: { keys[2 * $0] == 0 && keys[2 * $0 + 1] == 0 },
            home: { Int(truncatingIfNeeded: keys[2 * $0]) & mask },
            move: { i, j in
                keys[2 * j] = keys[2 * i]
                keys[2 * j + 1] = keys[2 * i + 1]
                values[j] = values[i]
                keys[2 * i] = 0
                keys[2 * i + 1] = 0
            },
            clear: { i in
                keys[2 * i] = 0
                keys[2 * i + 1] = 0
            })
        stored -= 1
        return true
    }

    /// Adds each of `keys` with `value`, in order, as `insert(_:_:)` would, and tells `added`
    /// for each (its position, and whether it was new): the table is grown for all of them
    /// first and their slots read first (see `prefetch`), so that the loop that adds them does
    /// no more than probe and store. `added` runs inside the access to this map: it must not
    /// touch the map.
    @inlinable
    public mutating func insert(_ keys: some Collection<Key128>, _ value: Value, added: (Int, Bool) -> Void) {
        makeRoom(for: keys.count)
        prefetch(keys)
        for (n, key) in keys.enumerated() { added(n, insertInRoom(key, value)) }
    }

    /// Grows the table (and unshares it) so that `count` more keys fit without growing, in
    /// place when it holds its storage alone.
    @usableFromInline
    mutating func makeRoom(for count: Int) {
        while (stored + count) * 2 > mask + 1 {
            if isKnownUniquelyReferenced(&storage) {
                storage.double()
                rehashAfterDoubling()
            } else {
                resize(to: (mask + 1) * 2)
            }
        }
        if !isKnownUniquelyReferenced(&storage) { resize(to: mask + 1) }
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
    /// second table is ever held beside the first (see `rehashAfterDoubling(oldSlots:...)`).
    @usableFromInline
    mutating func rehashAfterDoubling() {
        let oldSlots = (mask + 1)
        keys = storage.keys
        values = storage.values
        mask = oldSlots * 2 - 1
        let keys = keys, values = values, mask = mask
        BallotCollections.rehashAfterDoubling(
            oldSlots: oldSlots, isEmpty: { keys[2 * $0] == 0 && keys[2 * $0 + 1] == 0 },
            home: { Int(truncatingIfNeeded: keys[2 * $0]) & mask },
            move: { i, j in
                keys[2 * j] = keys[2 * i]
                keys[2 * j + 1] = keys[2 * i + 1]
                values[j] = values[i]
                keys[2 * i] = 0
                keys[2 * i + 1] = 0
            },
            swap: { i, j in
                (keys[2 * j], keys[2 * i]) = (keys[2 * i], keys[2 * j])
                (keys[2 * j + 1], keys[2 * i + 1]) = (keys[2 * i + 1], keys[2 * j + 1])
                (values[j], values[i]) = (values[i], values[j])
            })
    }

    /// Moves every entry into fresh storage of `size` slots: how a shared copy is unshared.
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
        fresh.copies = copies + 1
        self = fresh
    }
}
