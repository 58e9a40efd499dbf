/// An index from keys to the events that hold them, for tables of millions. Only the top 32
/// bits of a key's `a` are used, and they must be uniformly random (HMAC, SHA-256 or a good
/// hash). A slot keeps those bits, its tag (the lowest forced to 1, so that no slot in use is
/// zero, the empty mark), and the low 32 bits of the event's sequence number: 8 bytes, where a
/// map of whole keys to sequence numbers takes 20 or 24. So a lookup gives candidates, not an
/// answer: the caller reads each candidate event and compares the whole key it holds.
///
/// The home slot of a tag is its top bits, as many as the table has: doubling the table splits
/// each home in two, so the tag alone places every entry again and the table doubles where it
/// is (see `rehashAfterDoubling`). The price: entries that share a home share those bits, so
/// only the other 31 - log2(slots) tell keys apart. A key that is not there meets a candidate
/// in about (load) x 2^(log2(slots) - 31) of lookups: once in 2,000 at a million keys (2^21
/// slots), once in 130 at 16 million. At most 2^30 entries (2^31 slots). Open addressing with
/// linear probing, at most half full; copy-on-write like `Key128Map`.
public struct SequenceIndex: @unchecked Sendable {
    @usableFromInline
    final class Storage {
        private var block: TableBlock
        @usableFromInline private(set) var slots: UnsafeMutablePointer<UInt64>
        @usableFromInline private(set) var capacity: Int

        @usableFromInline
        init(capacity: Int) {
            self.capacity = capacity
            block = TableBlock(zeroedBytes: capacity * 8)
            slots = block.base.bindMemory(to: UInt64.self, capacity: capacity)
        }

        /// Doubles the slots, the new half empty; the old half keeps its entries where they were.
        @usableFromInline
        func double() {
            capacity *= 2
            block.grow(to: capacity * 8)
            slots = block.base.bindMemory(to: UInt64.self, capacity: capacity)
        }

        deinit { block.release() }
    }

    @usableFromInline var storage: Storage
    /// `storage.slots`, kept here so that reading a slot touches no object.
    @usableFromInline var slots: UnsafeMutablePointer<UInt64>
    /// 32 minus the number of bits of a slot index: a tag shifted right by this is its home.
    @usableFromInline var homeShift: Int
    @usableFromInline var stored = 0
    /// What `prefetch` read, kept so that its loads cannot be optimised away.
    @usableFromInline var prefetched: UInt64 = 0

    /// The number of entries.
    @inlinable public var count: Int { stored }

    @inlinable
    public init(capacity: Int = 1024) {
        var bits = 4
        while 1 << bits < capacity * 2 { bits += 1 }
        precondition(bits < 32, "a sequence index of more than 2^31 entries")
        storage = Storage(capacity: 1 << bits)
        slots = storage.slots
        homeShift = 32 - bits
    }

    /// A key's tag: the top 32 bits of `a`, the lowest set so that no slot in use is all zero.
    @inlinable
    static func tag(_ key: Key128) -> UInt64 { (key.a >> 32) | 1 }

    @inlinable
    var mask: Int { (1 << (32 - homeShift)) - 1 }

    @inlinable
    func home(ofTag tag: UInt64) -> Int { Int(truncatingIfNeeded: tag >> UInt64(homeShift)) }

    /// Records that the event `seq` holds `key`. Does not look for the key first: the caller
    /// has, with `firstEvent(holding:lastSeq:where:)`.
    @inlinable
    public mutating func insert(_ key: Key128, seq: UInt64) {
        makeRoom(for: 1)
        place(Self.tag(key) << 32 | (seq & 0xFFFF_FFFF))
        stored += 1
    }

    /// Removes the record that event `seq` holds `key`; returns false if there is none. (How a
    /// batch whose transaction failed takes back the keys it added: see `removeShiftingBack`.)
    @discardableResult
    public mutating func remove(_ key: Key128, seq: UInt64) -> Bool {
        makeRoom(for: 0)   // unshares the storage
        let wanted = Self.tag(key) << 32 | (seq & 0xFFFF_FFFF), mask = mask
        var i = home(ofTag: Self.tag(key))
        while slots[i] != 0 && slots[i] != wanted { i = (i + 1) & mask }
        guard slots[i] == wanted else { return false }
        let slots = slots, shift = UInt64(homeShift)
        BallotCollections.removeShiftingBack(
            slot: i, slots: mask + 1, isEmpty: { slots[$0] == 0 },
            home: { Int(truncatingIfNeeded: slots[$0] >> (32 + shift)) },
            move: { i, j in
                slots[j] = slots[i]
                slots[i] = 0
            },
            clear: { slots[$0] = 0 })
        stored -= 1
        return true
    }

    /// Records, in order, that each event `keys[i].seq` holds `keys[i].key`, unless an earlier
    /// event does: each candidate met on the way to the key's free slot, an event before it
    /// that may hold the key (see `firstEvent(holding:lastSeq:where:)`), is asked
    /// `holds(i, candidate)`, and the first for which it says so is returned with `i`, and that
    /// key is not recorded. One probe a key, where a look-up and an insert take two, and every
    /// key's home slot is read first, so that their cache misses overlap (see `prefetch`).
    @inlinable
    public mutating func insert(_ keys: [(key: Key128, seq: UInt64)],
                                unlessHeldBy holds: (Int, UInt64) throws -> Bool) rethrows -> [(index: Int, earlier: UInt64)] {
        makeRoom(for: keys.count)
        prefetch(keys.lazy.map(\.key))
        var held: [(index: Int, earlier: UInt64)] = []
        let slots = slots, mask = mask, shift = UInt64(homeShift)
        for n in keys.indices {
            let (key, seq) = keys[n]
            let tag = Self.tag(key)
            var i = Int(truncatingIfNeeded: tag >> shift)
            var earlier: UInt64?
            probe: while slots[i] != 0 {
                let slot = slots[i]
                if slot >> 32 == tag {
                    var candidate = slot & 0xFFFF_FFFF
                    while candidate < seq {
                        if candidate > 0, try holds(n, candidate) {
                            earlier = candidate
                            break probe
                        }
                        candidate += 1 << 32
                    }
                }
                i = (i + 1) & mask
            }
            if let earlier {
                held.append((n, earlier))
            } else {
                slots[i] = tag << 32 | (seq & 0xFFFF_FFFF)
                stored += 1
            }
        }
        return held
    }

    /// Grows the table (and unshares it) so that `count` more entries fit without growing:
    /// in place when it holds its storage alone, else into a copy of its own.
    @usableFromInline
    mutating func makeRoom(for count: Int) {
        while (stored + count) * 2 > mask + 1 {
            precondition(homeShift > 1, "a sequence index holds at most 2^30 entries")
            if isKnownUniquelyReferenced(&storage) {
                storage.double()
                rehashAfterDoubling()
            } else {
                copy(doubling: true)
            }
        }
        if !isKnownUniquelyReferenced(&storage) { copy(doubling: false) }
    }

    @inlinable
    mutating func place(_ slot: UInt64) {
        let mask = mask
        var i = home(ofTag: slot >> 32)
        while slots[i] != 0 { i = (i + 1) & mask }
        slots[i] = slot
    }

    /// The first event, in probe order, that may hold `key` and for which `holds` says it does;
    /// nil if none. Each candidate's sequence number is known to 32 bits, so in a ledger of
    /// more than 2^32 events (`lastSeq`) every number with those low bits is a candidate.
    @inlinable
    public func firstEvent(holding key: Key128, lastSeq: UInt64,
                           where holds: (UInt64) throws -> Bool) rethrows -> UInt64? {
        let tag = Self.tag(key), mask = mask
        var i = home(ofTag: tag)
        while slots[i] != 0 {
            let slot = slots[i]
            if slot >> 32 == tag {
                var seq = slot & 0xFFFF_FFFF
                while seq <= lastSeq {
                    if seq > 0, try holds(seq) { return seq }
                    seq += 1 << 32
                }
            }
            i = (i + 1) & mask
        }
        return nil
    }

    /// Reads the home slot of each key, so that lookups of those keys soon after find it in
    /// cache; the loads do not depend on one another, so their cache misses overlap (see
    /// `Key128Map.prefetch`).
    @inlinable
    public mutating func prefetch(_ keys: some Sequence<Key128>) {
        var fold: UInt64 = 0
        for key in keys { fold ^= slots[home(ofTag: Self.tag(key))] }
        prefetched = fold
    }

    @usableFromInline
    mutating func rehashAfterDoubling() {
        let oldSlots = mask + 1
        slots = storage.slots
        homeShift -= 1
        let slots = slots, shift = UInt64(homeShift)
        BallotCollections.rehashAfterDoubling(
            oldSlots: oldSlots, isEmpty: { slots[$0] == 0 }, home: { Int(truncatingIfNeeded: slots[$0] >> (32 + shift)) },
            move: { i, j in
                slots[j] = slots[i]
                slots[i] = 0
            },
            swap: { i, j in (slots[i], slots[j]) = (slots[j], slots[i]) })
    }

    /// Moves every entry into fresh storage (how a shared copy is unshared), twice the size
    /// when `doubling`.
    @usableFromInline
    mutating func copy(doubling: Bool) {
        let oldSlots = slots, oldCount = mask + 1
        var fresh = SequenceIndex(capacity: doubling ? oldCount : oldCount / 2)
        for i in 0..<oldCount where oldSlots[i] != 0 { fresh.place(oldSlots[i]) }
        fresh.stored = stored
        self = fresh
    }
}
