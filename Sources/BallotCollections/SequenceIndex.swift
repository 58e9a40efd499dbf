#if canImport(Glibc)
import Glibc
#endif

/// An index from keys to the events that hold them, for tables of millions. Only the top 32
/// bits of a key's `a` are used, and they must be uniformly random (HMAC, SHA-256 or a good
/// hash). A slot keeps those bits, its tag (the lowest forced to 1, so that no slot in use is
/// zero, the empty mark), and the low 32 bits of the event's sequence number: 8 bytes, where a
/// map of whole keys to sequence numbers takes 20 or 24. So a lookup gives candidates, not an
/// answer: the caller reads each candidate event and compares the whole key it holds.
///
/// The home slot of a tag is its top bits, as many as the table has: doubling the table splits
/// each home in two, so the tag alone places every entry again and the table doubles where it
/// is (see `rehashAfterGrowing`). The price: entries that share a home share those bits, so
/// only the other 31 - log2(slots) tell keys apart. A key that is not there meets a candidate
/// in about (load) x 2^(log2(slots) - 31) of lookups: once in 2,000 at a million keys (2^21
/// slots), once in 130 at 16 million. At most 2^30 entries (2^31 slots). Open addressing with
/// linear probing, at most half full; like `TaggedKeySet`, a class (one table, never copied), in
/// memory or in a file, grown explicitly by `reserve`, with `layers` below it when in files
/// (`TableLayers`).
public final class SequenceIndex: LayeredTable, @unchecked Sendable {
    @usableFromInline @exclusivity(unchecked) var storage: TableWords
    /// `storage.words`: one word a slot, 0 when empty.
    @usableFromInline @exclusivity(unchecked) var slots: UnsafeMutablePointer<UInt64>
    /// 32 minus the number of bits of a slot index: a tag shifted right by this is its home.
    @usableFromInline @exclusivity(unchecked) var homeShift: Int
    /// The count of entries, where `storage` keeps it (a file's header, for a table in a file).
    @usableFromInline var stored: Int {
        get { storage.count.pointee }
        set { storage.count.pointee = newValue }
    }
    /// What `prefetch` read, kept so that its loads cannot be optimised away.
    @usableFromInline @exclusivity(unchecked) var prefetched: UInt64 = 0
    /// The older entries of an index in files, frozen or in runs; nil for an index in memory.
    @usableFromInline var layers: TableLayers<SequenceIndex>?
    /// Whether `layers` holds any layer: what a lookup that misses this table's own slots reads
    /// (below the cap, every lookup of a new key), kept here so that it is one load.
    @usableFromInline @exclusivity(unchecked) var hasLayers = false

    /// The number of entries.
    @inlinable public var count: Int { stored + (layers?.layeredCount ?? 0) }
    public var ownCount: Int { stored }
    /// The number of slots (a power of two): what a file of the index holds, 8 bytes each.
    public var slotCount: Int { mask + 1 }
    public var isFileBacked: Bool { storage.isFileBacked }
    /// The fewest slots a table in a file has: one page.
    public static var minimumFileSlots: Int { TableBlock.pageBytes / 8 }

    /// An empty index in memory with room for `capacity` entries.
    public init(capacity: Int = 1024) {
        let bits = Self.bits(for: capacity)
        storage = TableWords(words: 1 << bits)
        slots = storage.words
        homeShift = 32 - bits
    }

    /// The index kept in `file`, of `slots` slots (its count is in the file); an empty file
    /// becomes an empty index.
    public init(file: TableFile, slots size: Int) throws(TableError) {
        guard size >= Self.minimumFileSlots && size & (size - 1) == 0 && size <= 1 << 31 else {
            throw TableError(call: "mapping", what: "of \(file.path): an index's slots are a power of two of at least \(Self.minimumFileSlots), not \(size)", errno: EINVAL)
        }
        storage = try TableWords(words: size, slotBytes: 8, file: file)
        slots = storage.words
        homeShift = 32 - size.trailingZeroBitCount
    }

    /// The bytes a file of an index of `slots` slots takes.
    public static func fileBytes(slots: Int) -> Int { TableWords.fileBytes(words: slots) }

    /// An index frozen as a layer: it owns `storage` from now on, and nothing changes it.
    private init(frozen storage: TableWords, homeShift: Int) {
        self.storage = storage
        slots = storage.words
        self.homeShift = homeShift
    }

    deinit { storage.release() }

    /// The table's pages when it is in anonymous memory of its own mapping (`TablePages`).
    package var anonymousPages: TablePages? { storage.anonymousPages }

    public static var slotWords: Int { 1 }
    public static var secondKeyMask: UInt64 { 0 }
    public var runSource: SortedRun.Source { SortedRun.Source(table: storage.words, slots: mask + 1, owner: self) }

    /// Puts this index below `layers`, which kept it in files.
    public func keep(in layers: TableLayers<SequenceIndex>) {
        self.layers = layers
        hasLayers = !layers.layers.isEmpty
    }

    /// Counts the changes of the layers: a freeze, a run put in place (0 without layers).
    public var layerChanges: Int { layers?.changes ?? 0 }

    static func bits(for capacity: Int) -> Int {
        var bits = 4
        while 1 << bits < capacity * 2 { bits += 1 }
        precondition(bits < 32, "a sequence index of more than 2^31 entries")
        return bits
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
    public func insert(_ key: Key128, seq: UInt64) {
        makeRoom(for: 1)
        stored += 1   // first, so that a death in between leaves the count high, never low
        place(Self.tag(key) << 32 | (seq & 0xFFFF_FFFF))
    }

    /// Removes the record that event `seq` holds `key` from this index's own slots (a batch only
    /// ever adds there); returns false if there is none. (How a
    /// batch whose transaction failed takes back the keys it added: see `removeShiftingBack`.)
    @discardableResult
    public func remove(_ key: Key128, seq: UInt64) -> Bool {
        let wanted = Self.tag(key) << 32 | (seq & 0xFFFF_FFFF), mask = mask
        var i = home(ofTag: Self.tag(key))
        while slots[i] != 0 && slots[i] != wanted { i = (i + 1) & mask }
        guard slots[i] == wanted else { return false }
        let slots = slots, shift = UInt64(homeShift)
        BallotCollections.removeShiftingBack(
            slot: i, slots: mask + 1, isEmpty: { slots[$0] == 0 },
            home: { Int(truncatingIfNeeded: slots[$0] >> (32 + shift)) },
            copy: { i, j in slots[j] = slots[i] },
            clear: { slots[$0] = 0 })
        stored -= 1
        return true
    }

    /// Records, in order, that each event `keys[i].seq` holds `keys[i].key`, unless an earlier
    /// event does: each candidate met on the way to the key's free slot, an event before it
    /// that may hold the key (see `firstEvent(holding:lastSeq:where:)`), is asked
    /// `holds(i, candidate)`, and the first for which it says so is returned with `i`, and that
    /// key is not recorded. An entry that already records this very event (an index that was
    /// ahead of the replay, see docs/architecture.md) is kept as it is. One probe a key, where a
    /// look-up and an insert take two, and every key's home slot is read first, so that their
    /// cache misses overlap (see `prefetch`).
    @inlinable
    public func insert(_ keys: [(key: Key128, seq: UInt64)],
                       unlessHeldBy holds: (Int, UInt64) throws -> Bool) rethrows -> [(index: Int, earlier: UInt64)] {
        makeRoom(for: keys.count)
        prefetch(keys.lazy.map(\.key))
        var held: [(index: Int, earlier: UInt64)] = []
        let slots = slots, mask = mask, shift = UInt64(homeShift)
        for n in keys.indices {
            let (key, seq) = keys[n]
            let tag = Self.tag(key)
            let entry = tag << 32 | (seq & 0xFFFF_FFFF)
            var i = Int(truncatingIfNeeded: tag >> shift)
            var earlier: UInt64?
            var present = false
            probe: while slots[i] != 0 {
                let slot = slots[i]
                if slot == entry {
                    present = true
                    break probe
                }
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
            if earlier == nil && !present && hasLayers {
                (earlier, present) = try layered(entry, before: seq) { try holds(n, $0) }
            }
            if let earlier {
                held.append((n, earlier))
            } else if !present {
                stored += 1
                slots[i] = entry
            }
        }
        return held
    }

    /// What the layers hold of `entry` (a tag and an event): whether they have it, or the first
    /// earlier event with its tag that `holds` says holds its key.
    @usableFromInline
    func layered(_ entry: UInt64, before seq: UInt64, holds: (UInt64) throws -> Bool) rethrows -> (earlier: UInt64?, present: Bool) {
        var earlier: UInt64?
        var present = false
        try eachLayeredEntry(tagged: entry >> 32) { slot in
            if slot == entry {
                present = true
                return true
            }
            var candidate = slot & 0xFFFF_FFFF
            while candidate < seq {
                if candidate > 0, try holds(candidate) {
                    earlier = candidate
                    return true
                }
                candidate += 1 << 32
            }
            return false
        }
        return (earlier, present)
    }

    /// Calls `body` with each entry of the layers, newest layer first, whose tag is `tag`, until
    /// it returns true.
    @usableFromInline
    func eachLayeredEntry(tagged tag: UInt64, _ body: (UInt64) throws -> Bool) rethrows {
        guard let layers else { return }
        for (layer, _) in layers.layers.reversed() {
            switch layer {
            case .table(let index):
                let mask = index.mask
                var i = index.home(ofTag: tag)
                while index.slots[i] != 0 {
                    if index.slots[i] >> 32 == tag, try body(index.slots[i]) { return }
                    i = (i + 1) & mask
                }
            case .run(let run):
                for i in run.bucket(of: tag << 32) {
                    let slot = run.word(i, 0)
                    if slot >> 32 > tag { break }
                    if slot >> 32 == tag, try body(slot) { return }
                }
            }
        }
    }

    /// Makes room for `extra` more entries, doubling in place as often as needed, or, at the cap
    /// of its `layers`, freezing this index's slots as a layer and starting on empty ones (see
    /// `TaggedKeySet.reserve`): the one step that can fail, for an index in a file whose disk
    /// is full.
    public func reserve(_ extra: Int) throws(TableError) {
        if let layers {
            layers.settle()
            if (stored + extra) * 2 > mask + 1 && mask + 1 >= layers.capSlots && stored > 0 && layers.canFreeze { try freeze(layers) }
            hasLayers = !layers.layers.isEmpty
        }
        try grow(toFit: extra)
    }

    private func freeze(_ layers: TableLayers<SequenceIndex>) throws(TableError) {
        let (next, file, generation) = try layers.freshStorage(slotBytes: 8)
        let frozen = SequenceIndex(frozen: storage, homeShift: homeShift)
        storage = next
        slots = next.words
        homeShift = 32 - layers.capSlots.trailingZeroBitCount
        layers.didFreeze(frozen, into: file, generation: generation)
    }

    /// When `needed` more entries would not fit, grows in place for `extra` more, never past
    /// the size at which `reserve` would freeze the index (see `TaggedKeySet.reserveAhead`).
    public func reserveAhead(_ extra: Int, whenShortOf needed: Int) throws(TableError) {
        guard (stored + needed) * 2 > mask + 1 else { return }
        let limit = layers.map { $0.capSlots / 2 } ?? TaggedKeySet.aheadLimit
        try grow(toFit: min(extra, limit - stored))
    }

    /// Doubles as many times as `extra` more entries need, then rehashes once.
    private func grow(toFit extra: Int) throws(TableError) {
        var size = mask + 1, shift = homeShift
        while (stored + extra) * 2 > size {
            guard shift > 1 else {
                throw TableError(call: "growing", what: "an index past 2^30 entries, its most", errno: EFBIG)
            }
            size *= 2
            shift -= 1
        }
        guard size > mask + 1 else { return }
        try storage.grow(toWords: size)
        rehashAfterGrowing(homeShift: shift)
    }

    /// Room for an insert (see `TaggedKeySet.makeRoom`).
    @usableFromInline
    func makeRoom(for extra: Int) {
        guard (stored + extra) * 2 > mask + 1 else { return }
        do {
            try grow(toFit: extra)
        } catch {
            fatalError("an index could not grow, and nothing reserved room first: \(error)")
        }
    }

    @inlinable
    func place(_ slot: UInt64) {
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
        guard hasLayers else { return nil }
        var found: UInt64?
        try eachLayeredEntry(tagged: tag) { slot in
            var seq = slot & 0xFFFF_FFFF
            while seq <= lastSeq {
                if seq > 0, try holds(seq) {
                    found = seq
                    return true
                }
                seq += 1 << 32
            }
            return false
        }
        return found
    }

    /// Reads the home slot of each key, so that lookups of those keys soon after find it in
    /// cache; the loads do not depend on one another, so their cache misses overlap (see
    /// `TaggedKeySet.prefetch`).
    @inlinable
    public func prefetch(_ keys: some Sequence<Key128>) {
        var fold: UInt64 = 0
        for key in keys { fold ^= slots[home(ofTag: Self.tag(key))] }
        prefetched = fold
    }

    /// Writes a file-backed index's changed pages, and its frozen layers', to disk and waits.
    public func sync() throws(TableError) {
        try layers?.syncLayers()
        try storage.sync()
    }

    public func syncOwn() throws(TableError) { try storage.sync() }

    private func rehashAfterGrowing(homeShift newShift: Int) {
        let oldSlots = mask + 1
        slots = storage.words
        homeShift = newShift
        let slots = slots, shift = UInt64(homeShift)
        BallotCollections.rehashAfterGrowing(
            oldSlots: oldSlots, newSlots: mask + 1, isEmpty: { slots[$0] == 0 }, home: { Int(truncatingIfNeeded: slots[$0] >> (32 + shift)) },
            move: { i, j in
                slots[j] = slots[i]
                slots[i] = 0
            },
            swap: { i, j in (slots[i], slots[j]) = (slots[j], slots[i]) })
    }
}
