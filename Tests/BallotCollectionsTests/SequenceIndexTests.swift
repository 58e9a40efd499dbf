import Testing
@testable import BallotCollections

/// `SequenceIndex` keeps 32 bits of each key: lookups give candidates that the caller checks
/// against the whole key, as the ledger does by reading the event.
@Suite struct SequenceIndexTests {
    /// Random keys and the sequence numbers of the events holding them.
    func keys(_ n: Int, seed: UInt64) -> [Key128] {
        var x = seed
        return (0..<n).map { _ in
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Key128(a: x, b: x &* 0x9E37_79B9_7F4A_7C15)
        }
    }

    @Test func findsEveryKeyThroughDoublingsAndNoneThatIsAbsent() {
        let stored = keys(300_000, seed: 1)
        let index = SequenceIndex()
        for (i, key) in stored.enumerated() { index.insert(key, seq: UInt64(i + 1)) }
        #expect(index.count == 300_000)
        let lastSeq = UInt64(stored.count)
        // The caller's check: the event at seq holds the key at i = seq - 1.
        #expect(stored.enumerated().allSatisfy { i, key in
            index.firstEvent(holding: key, lastSeq: lastSeq) { stored[Int($0) - 1] == key } == UInt64(i + 1)
        })
        var candidates = 0
        for key in keys(100_000, seed: 2) {
            let found = index.firstEvent(holding: key, lastSeq: lastSeq) { seq in
                candidates += 1
                return stored[Int(seq) - 1] == key
            }
            #expect(found == nil)
        }
        #expect(candidates < 100)  // about 15 expected: 2^20 slots, 29 % full, 11 bits to tell keys apart
    }

    @Test func keysSharingATagAreToldApartByTheCaller() {
        let first = Key128(a: 0xABCD_0000_0000_0001, b: 1)
        let second = Key128(a: 0xABCD_0000_0000_0002, b: 2)  // the same top 32 bits
        let index = SequenceIndex()
        index.insert(first, seq: 10)
        index.insert(second, seq: 20)
        let holder: [UInt64: Key128] = [10: first, 20: second]
        var tried: [UInt64] = []
        let found = index.firstEvent(holding: second, lastSeq: 20) { seq in
            tried.append(seq)
            return holder[seq] == second
        }
        #expect(found == 20 && tried == [10, 20])
        #expect(index.firstEvent(holding: Key128(a: 0xABCD_0000_0000_0003, b: 3), lastSeq: 20) { holder[$0] == Key128(a: 0xABCD_0000_0000_0003, b: 3) } == nil)
    }

    @Test func sequenceNumbersPastTwoToTheThirtyTwo() {
        let key = Key128(a: 42 << 32, b: 7)
        let index = SequenceIndex()
        let seq: UInt64 = (1 << 33) + 9
        index.insert(key, seq: seq)
        var tried: [UInt64] = []
        let found = index.firstEvent(holding: key, lastSeq: seq + 5) { tried.append($0); return $0 == seq }
        #expect(found == seq && tried == [9, (1 << 32) + 9, seq])
        // Event 2^32 keeps low bits 0; event 0 does not exist and is never a candidate.
        index.insert(Key128(a: 44 << 32, b: 1), seq: 1 << 32)
        var zero: [UInt64] = []
        _ = index.firstEvent(holding: Key128(a: 44 << 32, b: 1), lastSeq: seq) { zero.append($0); return false }
        #expect(zero == [1 << 32, 1 << 33])
    }

    /// Inserting keys unless held gives what a look-up then an insert give, key by key: the
    /// first earlier event holding the key (and records nothing), or nil (and records the key),
    /// whether the earlier one came in the same call or before, through doublings.
    @Test func insertingUnlessHeldNamesTheFirstHolder() {
        let distinct = keys(40_000, seed: 4)
        var holder: [Key128] = [Key128(a: 0, b: 0)]  // holder[seq]: the key event seq holds
        var first: [Key128: UInt64] = [:]
        let index = SequenceIndex()
        var i = 0
        for size in [1, 1, 7, 100, 3, 1_000, 5_000, 33_888] {
            var batch: [(key: Key128, seq: UInt64)] = []
            var expected: [(index: Int, earlier: UInt64)] = []
            for _ in 0..<size {
                let held = i % 10 == 9 ? holder[i / 2 + 1] : distinct[i]  // every tenth event repeats an earlier one's key
                let seq = UInt64(holder.count)
                holder.append(held)
                if let earlier = first[held] { expected.append((batch.count, earlier)) } else { first[held] = seq }
                batch.append((held, seq))
                i += 1
            }
            let got = index.insert(batch) { n, candidate in holder[Int(candidate)] == batch[n].key }
            #expect(got.map(\.index) == expected.map(\.index) && got.map(\.earlier) == expected.map(\.earlier), "a batch of \(size)")
        }
        #expect(i == 40_000 && index.count == first.count && first.count == 36_000)
        // The same keys again (an index ahead of a replay): nothing held, nothing added twice.
        let again = (1..<holder.count).filter { first[holder[$0]] == UInt64($0) }.map { (key: holder[$0], seq: UInt64($0)) }
        #expect(index.insert(again) { _, _ in false }.isEmpty && index.count == first.count)
    }

    /// Taking back the entries a batch added, last first and across a doubling, leaves every
    /// earlier entry found and none of the batch's (a failed transaction's undo).
    @Test func removingABatchLeavesTheIndexAsItWas() {
        let stored = keys(3_000, seed: 5), batch = keys(5_000, seed: 6)
        let index = SequenceIndex(capacity: 8)
        for (i, key) in stored.enumerated() { index.insert(key, seq: UInt64(i + 1)) }
        for (i, key) in batch.enumerated() { index.insert(key, seq: UInt64(stored.count + i + 1)) }
        var removed = 0
        for (i, key) in batch.enumerated().reversed() where index.remove(key, seq: UInt64(stored.count + i + 1)) { removed += 1 }
        #expect(removed == batch.count)
        let again = index.remove(batch[0], seq: UInt64(stored.count + 1))
        #expect(!again)
        #expect(index.count == stored.count)
        let all = stored + batch
        let lastSeq = UInt64(all.count)
        #expect(stored.enumerated().allSatisfy { i, key in
            index.firstEvent(holding: key, lastSeq: lastSeq) { all[Int($0) - 1] == key } == UInt64(i + 1)
        })
        #expect(batch.allSatisfy { key in index.firstEvent(holding: key, lastSeq: lastSeq) { all[Int($0) - 1] == key } == nil })
    }
}

@Suite struct SequenceIndexFileTests {
    @Test func anIndexInAFileIsFoundAgain() throws {
        let files = TableFileFixture()
        let keys = randomKeys(100_000, seed: 11)
        var slots = 0
        do {
            let index = try SequenceIndex(file: files.open("keys"), slots: SequenceIndex.minimumFileSlots)
            try index.reserve(keys.count)
            for (i, k) in keys.enumerated() { index.insert(k, seq: UInt64(i + 1)) }
            slots = index.slotCount
        }
        #expect(files.size("keys") == SequenceIndex.fileBytes(slots: slots))
        let again = try SequenceIndex(file: files.open("keys"), slots: slots)
        #expect(keys.enumerated().allSatisfy { i, k in again.firstEvent(holding: k, lastSeq: UInt64(keys.count)) { keys[Int($0) - 1] == k } == UInt64(i + 1) })
    }
}
