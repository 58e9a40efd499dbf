import Testing
import Foundation
import BallotClient
@testable import BallotCollections

/// Random keys from a seeded generator.
func randomKeys(_ n: Int, seed: UInt64) -> [Key128] {
    var x = seed
    return (0..<n).map { _ in
        x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Key128(a: x, b: x &* 0x9E37_79B9_7F4A_7C15)
    }
}

/// A file for a table, in a fresh directory; removed with it.
final class TableFileFixture {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tables-\(UUID().uuidString)").path
    private(set) var files: [TableFile] = []

    init() { try! FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }

    func open(_ name: String) -> TableFile {
        let path = "\(directory)/\(name)"
        let fd = Foundation.open(path, O_RDWR | O_CREAT, 0o600)
        precondition(fd >= 0)
        let file = TableFile(descriptor: fd, path: path)
        files.append(file)
        return file
    }

    func size(_ name: String) -> Int {
        (try? FileManager.default.attributesOfItem(atPath: "\(directory)/\(name)")[.size] as? Int) ?? -1
    }

    deinit {
        for f in files { close(f.descriptor) }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

@Suite struct TaggedKeySetTests {
    @Test func growsAndKeepsEveryKeyWithItsTag() {
        let set = TaggedKeySet(capacity: 4)
        let keys = randomKeys(50_000, seed: 0x1234_5678)
        for (i, k) in keys.enumerated() {
            let previous = set.insert(k, tag: UInt32(i + 1))
            #expect(previous == nil)
        }
        #expect(set.count == 50_000)
        #expect(keys.enumerated().allSatisfy { set.tag(of: $1) == UInt32($0 + 1) })
        #expect(set.insert(keys[123], tag: 999) == 124, "a key already there keeps its tag")
        #expect(set.tag(of: keys[123]) == 124)
        #expect(!set.contains(Key128(a: 1, b: 2)))
    }

    /// The audit faults a fresh table's pages in on another thread while it fills the table:
    /// that changes nothing the table holds. Only a table in memory of its own mapping has such
    /// pages (a small one comes from the allocator, a file's are the file's).
    @Test func populatingPagesWhileTheTableFillsChangesNothing() throws {
        let set = TaggedKeySet(capacity: 1 << 20)
        let keys = randomKeys(300_000, seed: 99)
        let pages = try #require(set.anonymousPages)
        let populated = DispatchSemaphore(value: 0)
        Thread {
            pages.populate()
            populated.signal()
        }.start()
        for (i, k) in keys.enumerated() { set.insert(k, tag: UInt32(i + 1)) }
        populated.wait()
        pages.populate()  // and once more, over every key in place
        #expect(set.count == keys.count)
        #expect(keys.enumerated().allSatisfy { set.tag(of: $1) == UInt32($0 + 1) })
        #expect(TaggedKeySet(capacity: 16).anonymousPages == nil)
        let files = TableFileFixture()
        #expect(try TaggedKeySet(file: files.open("voters"), slots: TaggedKeySet.minimumFileSlots).anonymousPages == nil)
        #expect(SequenceIndex(capacity: 1 << 20).anonymousPages != nil)
    }

    /// A key is its first 96 bits: the low half of `b` is the tag's place, so keys that differ
    /// only there are one key; keys that share `a` (one home slot) are told apart by `b`.
    @Test func aKeyIsItsFirst96Bits() {
        let set = TaggedKeySet()
        #expect(set.insert(Key128(a: 7, b: 1 << 32), tag: 1) == nil)
        #expect(set.insert(Key128(a: 7, b: 2 << 32), tag: 2) == nil)
        #expect(set.insert(Key128(a: 7, b: (1 << 32) | 0xFFFF), tag: 3) == 1)
        #expect(set.insert(Key128(a: 0, b: 0), tag: 4) == nil, "the all-zero key is a key like any other")
        #expect(set.tag(of: Key128(a: 0, b: 0)) == 4 && set.count == 3)
        set.retag(Key128(a: 7, b: 2 << 32), tag: 9)
        #expect(set.tag(of: Key128(a: 7, b: 2 << 32)) == 9)
    }

    /// Many keys added in one call visit each what one `insert` at a time would have said, in
    /// order (repeats inside the call and of earlier keys, keys crowding one home), through
    /// growth; a visit that takes an entry over gives it the new tag.
    @Test func manyAtOnceSayWhatOneAtATimeSays() {
        var keys = randomKeys(20_000, seed: 99)
        for i in keys.indices where i % 9 == 8 { keys[i] = keys[i / 3] }
        for i in keys.indices where i % 101 == 5 { keys[i] = Key128(a: keys[i].a & 0xFF, b: keys[i].b) }
        let one = TaggedKeySet(capacity: 4), many = TaggedKeySet(capacity: 4)
        var start = 0
        for size in [1, 2, 30, 500, 3_000, 16_467] {
            let batch = Array(keys[start..<(start + size)])
            var said: [UInt32?] = []
            many.insert(batch, tags: { UInt32(start + $0 + 1) }) { n, previous in
                #expect(n == said.count)
                said.append(previous)
                return n % 2 == 0
            }
            let expected = batch.enumerated().map { n, k -> UInt32? in
                let previous = one.insert(k, tag: UInt32(start + n + 1))
                if previous != nil && n % 2 == 0 { one.retag(k, tag: UInt32(start + n + 1)) }
                return previous
            }
            #expect(said == expected, "a batch of \(size) from \(start)")
            start += size
        }
        #expect(many.count == one.count && keys.allSatisfy { many.tag(of: $0) == one.tag(of: $0) })
    }

    /// Keys crowded at the end of the table wrap round to its start; doubling in place must still
    /// find every one. One key in a hundred has its low 20 bits set: the last slot is its home at
    /// every size up to 2^20.
    @Test func doublingInPlaceKeepsWrappedClusters() {
        let set = TaggedKeySet(capacity: 4)
        var keys: [Key128] = []
        for i in 0..<400_000 {
            let crowded = (UInt64(i) << 20) | 0xF_FFFF
            keys.append(Key128(a: i % 100 == 0 ? crowded : UInt64(i) &* 0x9E37_79B9_7F4A_7C15 | 1, b: UInt64(i) << 32))
        }
        for (i, k) in keys.enumerated() {
            #expect(set.insert(k, tag: UInt32(i + 1)) == nil)
            if i % 99_999 == 0 { #expect(keys[...i].enumerated().allSatisfy { set.tag(of: $1) == UInt32($0 + 1) }) }
        }
        #expect(set.count == 400_000 && set.slotCount == 1 << 20)
        #expect(keys.enumerated().allSatisfy { set.tag(of: $1) == UInt32($0 + 1) })
    }

    /// Removing keys leaves no hole in any probe path: against a `Set`, with keys crowded into a
    /// few home slots (long clusters that wrap around the end), and a batch of additions taken
    /// back last first across a doubling, as a failed transaction does.
    @Test func removingKeysKeepsEveryOtherReachable() {
        var x: UInt64 = 17
        func next() -> UInt64 {
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return x
        }
        let set = TaggedKeySet(capacity: 8)
        var model = Set<Key128>()
        for _ in 0..<6_000 {
            let r = next()
            let k = Key128(a: r % 3 == 0 ? (r >> 40) & 7 : UInt64.max - (r >> 40) & 7, b: (r >> 20 & 0xFF) << 32)
            if r & 3 == 0, let victim = model.first {
                let removed = set.remove(victim), again = set.remove(victim)
                #expect(removed && !again)
                model.remove(victim)
            } else {
                #expect((set.insert(k, tag: 1) == nil) == model.insert(k).inserted)
            }
        }
        #expect(set.count == model.count && model.allSatisfy { set.contains($0) })
        let before = model
        var batch: [Key128] = []
        for _ in 0..<5_000 {
            let r = next(), k = Key128(a: r, b: r << 32)
            if set.insert(k, tag: 2) == nil { batch.append(k) }
        }
        for k in batch.reversed() { #expect(set.remove(k)) }
        #expect(set.count == before.count && before.allSatisfy { set.contains($0) } && !batch.contains { set.contains($0) })
    }
}

/// A table kept in a file: what one process wrote, another finds, count and all, through
/// doublings; its file is a header page and its slots; a file of another kind is refused.
@Suite struct TaggedKeySetFileTests {
    @Test func aTableInAFileIsFoundAgainByTheNextProcess() throws {
        let files = TableFileFixture()
        let keys = randomKeys(300_000, seed: 7)
        var slots = 0
        do {
            let set = try TaggedKeySet(file: files.open("voters"), slots: TaggedKeySet.minimumFileSlots)
            #expect(set.isFileBacked)
            try set.reserve(100)
            for (i, k) in keys.prefix(200_000).enumerated() { set.insert(k, tag: UInt32(i + 1)) }
            try set.sync()
            slots = set.slotCount
        }
        #expect(files.size("voters") == TaggedKeySet.fileBytes(slots: slots) && slots == 1 << 19)
        let again = try TaggedKeySet(file: files.open("voters"), slots: slots)
        #expect(again.count == 200_000)
        #expect(keys.prefix(200_000).enumerated().allSatisfy { again.tag(of: $1) == UInt32($0 + 1) })
        #expect(!keys.suffix(100_000).contains { again.contains($0) })
        for (i, k) in keys.enumerated().dropFirst(200_000) { again.insert(k, tag: UInt32(i + 1)) }
        #expect(again.count == 300_000 && keys.enumerated().allSatisfy { again.tag(of: $1) == UInt32($0 + 1) })
    }

    @Test func aFileOfAnotherKindIsRefused() throws {
        let files = TableFileFixture()
        _ = try SequenceIndex(file: files.open("keys"), slots: SequenceIndex.minimumFileSlots)
        #expect(throws: TableError.self) { try TaggedKeySet(file: files.open("keys"), slots: TaggedKeySet.minimumFileSlots) }
        #expect(throws: TableError.self) { try TaggedKeySet(file: files.open("voters"), slots: 100) }
    }
}

/// Taking an entry out of a linear-probing table moves later entries back one at a time; a
/// table in a file may be left at any step by the death of the process. At every step, every
/// entry but the one taken out must still be found from its home.
@Suite struct RemovalStepsTests {
    @Test func everyStepOfARemovalKeepsEveryOtherEntryFound() {
        var rng = SplitMix64(seed: 5)
        for round in 0..<300 {
            let slots = 64, mask = slots - 1
            var table = [Int?](repeating: nil, count: slots)   // an entry is its home slot, made unique by an id
            var ids: [Int: Int] = [:]  // id -> home
            func insert(_ id: Int, home: Int) {
                var i = home
                while table[i] != nil { i = (i + 1) & mask }
                table[i] = id
                ids[id] = home
            }
            for id in 0..<40 { insert(id, home: Int(rng.next() % UInt64(round % 3 == 0 ? 4 : slots)) & mask) }
            let victim = Int(rng.next() % 40)
            let at = table.firstIndex(of: victim)!
            func found(_ id: Int) -> Bool {
                var i = ids[id]!
                while let e = table[i] {
                    if e == id { return true }
                    i = (i + 1) & mask
                }
                return false
            }
            var steps = 0
            removeShiftingBack(slot: at, slots: slots, isEmpty: { table[$0] == nil }, home: { ids[table[$0]!]! },
                               copy: { from, to in
                                   table[to] = table[from]
                                   steps += 1
                                   #expect(ids.keys.filter { $0 != victim }.allSatisfy(found), "round \(round), step \(steps)")
                               },
                               clear: { table[$0] = nil })
            #expect(!found(victim) && ids.keys.filter { $0 != victim }.allSatisfy(found))
            #expect(table.compactMap { $0 }.count == 39)
        }
    }
}
