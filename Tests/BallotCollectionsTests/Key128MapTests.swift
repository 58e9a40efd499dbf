import Testing
@testable import BallotCollections

@Suite struct Key128MapTests {
    func key(_ a: UInt64, _ b: UInt64) -> Key128 { Key128(a: a, b: b) }

    @Test func growsAndKeepsEveryEntry() {
        var map = Key128Map<UInt64>(capacity: 4)
        var x: UInt64 = 0x1234_5678
        var keys: [Key128] = []
        for _ in 0..<50_000 {
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            keys.append(key(x, x >> 7))
        }
        for (i, k) in keys.enumerated() {
            let inserted = map.insert(k, UInt64(i))
            #expect(inserted)
        }
        #expect(map.count == 50_000)
        #expect(keys.enumerated().allSatisfy { map[$1] == UInt64($0) })
        let again = map.insert(keys[123], 999)
        #expect(!again)
        #expect(map[keys[123]] == 123)
        #expect(map[key(1, 2)] == nil)
        #expect(!map.contains(key(1, 2)))
    }

    /// Many keys added in one call say, each, what one `insert` would have said, in order:
    /// repeats inside the call and of earlier keys, colliding first words and the zero key,
    /// through growth, and on a copy that shares the table (which keeps its own keys).
    @Test func manyAtOnceSayWhatOneAtATimeSays() {
        var x: UInt64 = 99
        var keys: [Key128] = []
        for i in 0..<20_000 {
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            keys.append(i % 9 == 8 ? keys[i / 3] : i % 101 == 5 ? key(x & 0xFF, 7) : i == 77 ? key(0, 0) : key(x, x >> 5))
        }
        var one = Key128Map<Int>(capacity: 4), many = Key128Map<Int>(capacity: 4)
        var shared = many
        var start = 0
        for size in [1, 2, 30, 500, 3_000, 16_467] {
            let batch = Array(keys[start..<(start + size)])
            var said: [Bool] = []
            many.insert(batch, 1) { n, isNew in
                #expect(n == said.count)
                said.append(isNew)
            }
            #expect(said == batch.map { one.insert($0, 1) }, "a batch of \(size) from \(start)")
            if size == 500 { shared = many }
            start += size
        }
        #expect(start == keys.count && many.count == one.count && keys.allSatisfy { many.contains($0) })
        #expect(shared.count == Set(keys[0..<533]).count && !shared.contains(keys[19_999]))
    }

    @Test func collidingFirstWordsAndTheZeroKey() {
        var set = Key128Map<Void>()
        let first = set.insert(key(7, 1), ())
        let second = set.insert(key(7, 2), ())   // same slot, different key
        #expect(first && second)
        #expect(set.contains(key(7, 1)) && set.contains(key(7, 2)) && !set.contains(key(7, 3)))
        #expect(!set.contains(key(0, 0)))
        let zero = set.insert(key(0, 0), ())
        let zeroAgain = set.insert(key(0, 0), ())
        #expect(zero && !zeroAgain)
        #expect(set.contains(key(0, 0)))
        #expect(set.count == 3)
    }
}

@Suite struct Key128MapLargeTests {
    /// 300,000 entries take 2^20 slots (16 MB of keys): mapped from the kernel, not malloc'd.
    @Test func aPageMappedTableKeepsEveryEntryAndPrefetchChangesNothing() {
        var map = Key128Map<UInt64>(capacity: 300_000)
        var x: UInt64 = 99
        var keys: [Key128] = []
        for _ in 0..<300_000 {
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            keys.append(Key128(a: x, b: ~x))
        }
        for (i, k) in keys.enumerated() where i % 2 == 0 { map.insert(k, UInt64(i)) }
        let copy = map
        map.prefetch(keys)
        for (i, k) in keys.enumerated() where i % 2 == 1 { map.insert(k, UInt64(i)) }
        #expect(map.count == 300_000 && copy.count == 150_000)
        #expect(keys.enumerated().allSatisfy { map[$1] == UInt64($0) })
        #expect(keys.enumerated().allSatisfy { copy[$1] == ($0 % 2 == 0 ? UInt64($0) : nil) })
    }
}

@Suite struct Key128MapDoublingTests {
    /// Keys crowded at the end of the table wrap round to its start; doubling in place (once
    /// both the keys and the values are page-mapped, from 2^18 slots here) must still find
    /// every one. One key in a hundred has its low 20
    /// bits set: the last slot is its home at every size up to 2^20.
    @Test func doublingInPlaceKeepsWrappedClusters() {
        var map = Key128Map<UInt64>(capacity: 4)
        var keys: [Key128] = []
        for i in 0..<400_000 {
            let crowded = (UInt64(i) << 20) | 0xF_FFFF
            keys.append(Key128(a: i % 100 == 0 ? crowded : UInt64(i) &* 0x9E37_79B9_7F4A_7C15 | 1, b: UInt64(i)))
        }
        for (i, k) in keys.enumerated() {
            let inserted = map.insert(k, UInt64(i))
            #expect(inserted)
            if i % 99_999 == 0 { #expect(keys[...i].enumerated().allSatisfy { map[$1] == UInt64($0) }) }
        }
        #expect(map.count == 400_000)
        #expect(keys.enumerated().allSatisfy { map[$1] == UInt64($0) })
        #expect(!map.contains(Key128(a: 0xF_FFFF, b: 999_999_999)))
    }

    /// From the default 2,048 slots to 2^20, through the allocator's memory and then
    /// page-mapped memory: no doubling copies the table into a second one, and a set's values
    /// take one byte in all (a set once copied itself at every doubling, because its values'
    /// block, a byte a slot, was too small to be page-mapped and could not grow where it was).
    @Test func aSetOfVoidValuesDoublesInPlace() {
        var set = Key128Map<Void>()
        for i in 1...300_000 { set.insert(Key128(a: UInt64(i) &* 0x9E37_79B9_7F4A_7C15, b: UInt64(i)), ()) }
        #expect(set.count == 300_000)
        #expect(set.copies == 0)
        #expect(set.storage.valueBlockBytes == 1)
        #expect((1...300_000).allSatisfy { set.contains(Key128(a: UInt64($0) &* 0x9E37_79B9_7F4A_7C15, b: UInt64($0))) })
    }

    @Test func aMapOfSmallValuesDoublesInPlace() {
        var map = Key128Map<UInt32>()
        for i in 1...300_000 { map.insert(Key128(a: UInt64(i) &* 0x9E37_79B9_7F4A_7C15, b: UInt64(i)), UInt32(i)) }
        #expect(map.copies == 0)
        #expect((1...300_000).allSatisfy { map[Key128(a: UInt64($0) &* 0x9E37_79B9_7F4A_7C15, b: UInt64($0))] == UInt32($0) })
        let shared = map
        map.insert(Key128(a: 1, b: 1), 0)
        #expect(map.copies == 1 && shared.copies == 0 && shared.count == 300_000 && map.count == 300_001)
    }
}

@Suite struct Key128MapValueTests {
    @Test func aCopyIsIndependent() {
        var original = Key128Map<UInt64>()
        original.insert(Key128(a: 1, b: 1), 10)
        var copy = original
        copy.insert(Key128(a: 2, b: 2), 20)
        original.insert(Key128(a: 3, b: 3), 30)
        #expect(original.count == 2 && copy.count == 2)
        #expect(original[Key128(a: 2, b: 2)] == nil)
        #expect(copy[Key128(a: 3, b: 3)] == nil)
        #expect(copy[Key128(a: 1, b: 1)] == 10 && original[Key128(a: 1, b: 1)] == 10)
    }

    /// Removing keys leaves no hole in any probe path: against a `Set`, with keys crowded into
    /// a few home slots (long clusters that wrap around the end), the zero key, and a batch of
    /// additions taken back last first across a doubling, as a failed transaction does.
    @Test func removingKeysKeepsEveryOtherReachable() {
        var x: UInt64 = 17
        func next() -> UInt64 {
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return x
        }
        var map = Key128Map<Void>(capacity: 8), model = Set<Key128>()
        for round in 0..<6_000 {
            let r = next()
            // Home slots crowd at both ends of the table; b tells keys apart.
            let k = round % 500 == 0 ? Key128(a: 0, b: 0)
                : Key128(a: r % 3 == 0 ? (r >> 40) & 7 : UInt64.max - (r >> 40) & 7, b: r >> 20 & 0xFF)
            if r & 3 == 0, let victim = model.first {
                let removed = map.remove(victim), again = map.remove(victim)
                #expect(removed && !again)
                model.remove(victim)
            } else {
                let inserted = map.insert(k, ())
                #expect(inserted == model.insert(k).inserted)
            }
        }
        #expect(map.count == model.count && model.allSatisfy { map.contains($0) })

        let before = model
        var batch: [Key128] = []
        for _ in 0..<5_000 {
            let r = next(), k = Key128(a: r, b: r >> 3)
            if map.insert(k, ()) { batch.append(k) }
        }
        for k in batch.reversed() {
            let removed = map.remove(k)
            #expect(removed)
        }
        #expect(map.count == before.count && before.allSatisfy { map.contains($0) } && !batch.contains { map.contains($0) })
    }
}
