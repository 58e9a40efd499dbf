#if canImport(Glibc)
import Glibc
#endif

/// A set of keys that are already uniformly random (HMAC or SHA-256 output), each with a tag of
/// 32 bits that says where it came from: the voters who have voted, tagged with the sequence
/// number of their vote. A key is its first 96 bits (`a` and the top half of `b`); a slot is
/// 16 bytes, the key and its tag, so that a lookup reads one cache line. Open addressing with
/// linear probing, at most three quarters full (a lookup that misses reads about two cache
/// lines then; the table and its zeroing are half what half full would take), doubling in place.
///
/// Why not `Set`: the first word of a key is already a hash, so SipHash is wasted work; and
/// these tables are far larger than the caches, so every lookup misses. The slots are read
/// through a plain pointer, with no reference counting on the lookup path.
///
/// A class, not a value: a table of millions is one table, in memory or in a file
/// (`init(file:slots:)`), changed in place and never copied. Growth is explicit
/// (`reserve`): a file's can fail, when its disk is full. A table in files may have `layers`
/// below it, which it looks in when a key is not in its own slots (`TableLayers`). See
/// docs/performance.md.
public final class TaggedKeySet: LayeredTable, @unchecked Sendable {
    @usableFromInline @exclusivity(unchecked) var storage: TableWords
    /// `storage.words`: pairs of words, slot i at 2i and 2i+1; (0, 0) marks an empty slot
    /// (no tag is 0, so no slot in use is).
    @usableFromInline @exclusivity(unchecked) var slots: UnsafeMutablePointer<UInt64>
    @usableFromInline @exclusivity(unchecked) var mask: Int
    /// The count of entries, where `storage` keeps it (a file's header, for a table in a file).
    @usableFromInline var stored: Int {
        get { storage.count.pointee }
        set { storage.count.pointee = newValue }
    }
    /// What `prefetch` read, kept so that its loads cannot be optimised away.
    @usableFromInline @exclusivity(unchecked) var prefetched: UInt64 = 0
    /// The older entries of a table in files, frozen or in runs; nil for a table in memory.
    @usableFromInline var layers: TableLayers<TaggedKeySet>?
    /// Whether `layers` holds any layer: what a lookup that misses this table's own slots reads
    /// (below the cap, every lookup of a new key), kept here so that it is one load.
    @usableFromInline @exclusivity(unchecked) var hasLayers = false

    /// The number of keys (a key in two layers counts twice).
    @inlinable public var count: Int { stored + (layers?.layeredCount ?? 0) }
    public var ownCount: Int { stored }
    /// The number of slots (a power of two): what a file of the table holds, 16 bytes each.
    public var slotCount: Int { mask + 1 }
    public var isFileBacked: Bool { storage.isFileBacked }
    /// The fewest slots a table in a file has: one page.
    public static var minimumFileSlots: Int { TableBlock.pageBytes / 16 }

    /// An empty table in memory with room for `capacity` keys.
    public init(capacity: Int = 1024) {
        let size = Self.slotCount(for: capacity)
        storage = TableWords(words: 2 * size)
        slots = storage.words
        mask = size - 1
    }

    /// The table kept in `file`, of `slots` slots (its count is in the file); an empty file
    /// becomes an empty table.
    public init(file: TableFile, slots size: Int) throws(TableError) {
        guard size >= Self.minimumFileSlots && size & (size - 1) == 0 else {
            throw TableError(call: "mapping", what: "of \(file.path): a table's slots are a power of two of at least \(Self.minimumFileSlots), not \(size)", errno: EINVAL)
        }
        storage = try TableWords(words: 2 * size, slotBytes: 16, file: file)
        slots = storage.words
        mask = size - 1
    }

    /// The bytes a file of a table of `slots` slots takes.
    public static func fileBytes(slots: Int) -> Int { TableWords.fileBytes(words: 2 * slots) }

    /// A table frozen as a layer: it owns `storage` from now on, and nothing changes it.
    private init(frozen storage: TableWords, mask: Int) {
        self.storage = storage
        slots = storage.words
        self.mask = mask
    }

    deinit { storage.release() }

    /// The table's pages when it is in anonymous memory of its own mapping (`TablePages`).
    package var anonymousPages: TablePages? { storage.anonymousPages }

    public static var slotWords: Int { 2 }
    /// The top half of a slot's second word is the key's; the bottom half its tag.
    public static var secondKeyMask: UInt64 { 0xFFFF_FFFF_0000_0000 }
    /// A removal cut short by the death of the process can leave an entry in two slots (see
    /// `removeShiftingBack`); a lookup finds the first on its probe path, and so does a run.
    public var runSource: SortedRun.Source {
        SortedRun.Source(table: storage.words, slots: mask + 1, owner: self) { [self] i in find(key(atSlot: i)) == i }
    }

    /// The key held in slot `i` (its tag bits are ignored by `matches`).
    func key(atSlot i: Int) -> Key128 { Key128(a: slots[2 * i], b: slots[2 * i + 1]) }

    /// Puts this table below `layers`, which kept it in files.
    public func keep(in layers: TableLayers<TaggedKeySet>) {
        self.layers = layers
        hasLayers = !layers.layers.isEmpty
    }

    /// Counts the changes of the layers: a freeze, a run put in place (0 without layers).
    public var layerChanges: Int { layers?.changes ?? 0 }

    static func slotCount(for capacity: Int) -> Int {
        var size = 16
        while size * 3 < capacity * 4 { size <<= 1 }
        return size
    }

    @inlinable
    static func matches(_ a: UInt64, _ b: UInt64, _ key: Key128) -> Bool { a == key.a && (b ^ key.b) >> 32 == 0 }

    /// The slot holding `key`, or the empty slot where it would go.
    @inlinable
    func find(_ key: Key128) -> Int {
        let slots = slots, mask = mask
        var i = Int(truncatingIfNeeded: key.a) & mask
        while true {
            let a = slots[2 * i], b = slots[2 * i + 1]
            if Self.matches(a, b, key) || (a == 0 && b == 0) { return i }
            i = (i + 1) & mask
        }
    }

    @inlinable
    func isEmpty(_ i: Int) -> Bool { slots[2 * i] == 0 && slots[2 * i + 1] == 0 }

    @inlinable
    func tag(atSlot i: Int) -> UInt32 { UInt32(truncatingIfNeeded: slots[2 * i + 1]) }

    @inlinable
    func store(_ key: Key128, tag: UInt32, at i: Int) {
        slots[2 * i] = key.a
        slots[2 * i + 1] = (key.b & 0xFFFF_FFFF_0000_0000) | UInt64(tag)
    }

    /// The tag of `key`, nil if it is not there.
    @inlinable
    public func tag(of key: Key128) -> UInt32? {
        let i = find(key)
        if !isEmpty(i) { return tag(atSlot: i) }
        return hasLayers ? layeredTag(of: key) : nil
    }

    /// The tag of `key` in the newest layer that has it.
    @usableFromInline
    func layeredTag(of key: Key128) -> UInt32? {
        guard let layers else { return nil }
        for (layer, _) in layers.layers.reversed() {
            switch layer {
            case .table(let table):
                if let tag = table.tag(of: key) { return tag }
            case .run(let run):
                for i in run.bucket(of: key.a) {
                    let a = run.word(i, 0)
                    if a > key.a { break }
                    let b = run.word(i, 1)
                    if Self.matches(a, b, key) { return UInt32(truncatingIfNeeded: b) }
                }
            }
        }
        return nil
    }

    @inlinable
    public func contains(_ key: Key128) -> Bool { tag(of: key) != nil }

    /// Adds `key` with `tag` (not 0) and returns nil; if it is already there, changes nothing
    /// and returns its tag. Grows the table if it must (see `reserve`).
    @inlinable @discardableResult
    public func insert(_ key: Key128, tag: UInt32) -> UInt32? {
        precondition(tag != 0, "a tag of 0 would read as an empty slot")
        makeRoom(for: 1)
        let i = find(key)
        if !isEmpty(i) { return self.tag(atSlot: i) }
        if hasLayers, let tag = layeredTag(of: key) { return tag }
        stored += 1   // first, so that a death in between leaves the count high, never low
        store(key, tag: tag, at: i)
        return nil
    }

    /// Gives `key`, which must be there, the tag `tag`. A key of a layer gets an entry in this
    /// table's own slots, which lookups find first.
    @inlinable
    public func retag(_ key: Key128, tag: UInt32) {
        precondition(tag != 0, "a tag of 0 would read as an empty slot")
        var i = find(key)
        if isEmpty(i) {
            precondition(hasLayers && layeredTag(of: key) != nil, "retagging a key that is not there")
            makeRoom(for: 1)
            i = find(key)
            stored += 1
        }
        store(key, tag: tag, at: i)
    }

    /// Adds each of `keys`, in order, with its tag `tags(n)`, and tells `visit(n, previous)`
    /// of each: `previous` is nil for a key that was not there (it now is), else the tag it has,
    /// and `visit` then says whether this one takes its place (its tag becomes `tags(n)`). The
    /// table is grown for all of them first and their slots read first (see `prefetch`), so
    /// that the loop that adds them does no more than probe and store. `visit` runs inside the
    /// access to this table: it must not touch it.
    @inlinable @inline(__always)
    public func insert(_ keys: some Collection<Key128>, tags: (Int) -> UInt32, visit: (Int, UInt32?) -> Bool) {
        makeRoom(for: keys.count)
        prefetch(keys)
        for (n, key) in keys.enumerated() {
            let i = find(key)
            if isEmpty(i) {
                if hasLayers, let previous = layeredTag(of: key) {
                    if visit(n, previous) {
                        stored += 1
                        store(key, tag: tags(n), at: i)
                    }
                } else {
                    stored += 1
                    store(key, tag: tags(n), at: i)
                    _ = visit(n, nil)
                }
            } else if visit(n, tag(atSlot: i)) {
                store(key, tag: tags(n), at: i)
            }
        }
    }

    /// Removes `key` from this table's own slots (a batch only ever adds there); returns false if
    /// it was not there. (How a batch whose transaction failed takes back the voters it added:
    /// see `removeShiftingBack`.)
    @discardableResult
    public func remove(_ key: Key128) -> Bool {
        let slot = find(key)
        guard !isEmpty(slot) else { return false }
        let slots = slots, mask = mask
        BallotCollections.removeShiftingBack(
            slot: slot, slots: mask + 1, isEmpty: { slots[2 * $0] == 0 && slots[2 * $0 + 1] == 0 },
            home: { Int(truncatingIfNeeded: slots[2 * $0]) & mask },
            copy: { i, j in
                slots[2 * j] = slots[2 * i]
                slots[2 * j + 1] = slots[2 * i + 1]
            },
            clear: { i in
                slots[2 * i] = 0
                slots[2 * i + 1] = 0
            })
        stored -= 1
        return true
    }

    /// Makes room for `extra` more keys, doubling in place as often as needed, or, at the cap of
    /// its `layers`, freezing this table's slots as a layer and starting on empty ones: the
    /// one step that can fail, for a table in a file whose disk is full. A caller that must not
    /// fail half way (a batch of votes) reserves before it begins: the layers change only here.
    public func reserve(_ extra: Int) throws(TableError) {
        if let layers {
            layers.settle()
            if (stored + extra) * 4 > (mask + 1) * 3 && mask + 1 >= layers.capSlots && stored > 0 && layers.canFreeze { try freeze(layers) }
            hasLayers = !layers.layers.isEmpty
        }
        try grow(toFit: extra)
    }

    /// When `needed` more keys would not fit, grows in place for `extra` more, the keys expected
    /// soon (an import's remaining rows), so that the table grows in a few large steps rather than
    /// doubling batch by batch, each time rehashing every key; but never past the size at which
    /// `reserve` would freeze the table (its layers' cap). A hint: `reserve` still makes sure of
    /// each batch's room, after it.
    public func reserveAhead(_ extra: Int, whenShortOf needed: Int) throws(TableError) {
        guard (stored + needed) * 4 > (mask + 1) * 3 else { return }
        let limit = layers.map { $0.capSlots / 4 * 3 } ?? Self.aheadLimit
        try grow(toFit: min(extra, limit - stored))
    }

    /// The most keys `reserveAhead` makes room for in a table in memory (one not kept in files).
    static let aheadLimit = 1 << 26

    /// Doubles as many times as `extra` more keys need, then rehashes once.
    private func grow(toFit extra: Int) throws(TableError) {
        var size = mask + 1
        while (stored + extra) * 4 > size * 3 { size *= 2 }
        guard size > mask + 1 else { return }
        try storage.grow(toWords: 2 * size)
        rehashAfterGrowing(to: size)
    }

    private func freeze(_ layers: TableLayers<TaggedKeySet>) throws(TableError) {
        let (next, file, generation) = try layers.freshStorage(slotBytes: 16)
        let frozen = TaggedKeySet(frozen: storage, mask: mask)
        storage = next
        slots = next.words
        mask = layers.capSlots - 1
        layers.didFreeze(frozen, into: file, generation: generation)
    }

    /// Room for an insert: a table in memory cannot fail to grow; one in a file should have
    /// been reserved for, and stops the process if its disk cannot give the room. Never
    /// freezes (a batch's keys must stay where it can take them back).
    @usableFromInline
    func makeRoom(for extra: Int) {
        guard (stored + extra) * 4 > (mask + 1) * 3 else { return }
        do {
            try grow(toFit: extra)
        } catch {
            fatalError("a table could not grow, and nothing reserved room first: \(error)")
        }
    }

    /// Reads the first slot each key would probe, so that lookups of those keys soon after find
    /// it in cache. These loads do not depend on one another, so the processor overlaps their
    /// cache misses instead of taking them one at a time as lookups in turn would; on a table
    /// far larger than the caches a batch of lookups runs several times faster after this.
    @inlinable
    public func prefetch(_ batch: some Sequence<Key128>) {
        let slots = slots, mask = mask
        var fold: UInt64 = 0
        for key in batch { fold ^= slots[2 * (Int(truncatingIfNeeded: key.a) & mask)] }
        prefetched = fold
    }

    /// Writes a file-backed table's changed pages, and its frozen layers', to disk and waits.
    public func sync() throws(TableError) {
        try layers?.syncLayers()
        try storage.sync()
    }

    public func syncOwn() throws(TableError) { try storage.sync() }

    /// Puts every entry where it belongs now that the storage has grown in place, so that no
    /// second table is ever held beside the first (see `rehashAfterGrowing(oldSlots:...)`).
    private func rehashAfterGrowing(to size: Int) {
        let oldSlots = mask + 1
        slots = storage.words
        mask = size - 1
        let slots = slots, mask = mask
        BallotCollections.rehashAfterGrowing(
            oldSlots: oldSlots, newSlots: mask + 1, isEmpty: { slots[2 * $0] == 0 && slots[2 * $0 + 1] == 0 },
            home: { Int(truncatingIfNeeded: slots[2 * $0]) & mask },
            move: { i, j in
                slots[2 * j] = slots[2 * i]
                slots[2 * j + 1] = slots[2 * i + 1]
                slots[2 * i] = 0
                slots[2 * i + 1] = 0
            },
            swap: { i, j in
                (slots[2 * j], slots[2 * i]) = (slots[2 * i], slots[2 * j])
                (slots[2 * j + 1], slots[2 * i + 1]) = (slots[2 * i + 1], slots[2 * j + 1])
            })
    }
}
