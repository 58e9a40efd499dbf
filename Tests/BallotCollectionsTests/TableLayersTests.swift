import Testing
import Foundation
import BallotClient
@testable import BallotCollections

/// Tables in layers (`TableLayers`): a table at its cap is frozen, runs are built from frozen
/// tables and merged, and through all of it every lookup answers as a plain dictionary of the
/// same inserts, retags and take-backs would; the layers a snapshot records open again to
/// the same answers; a damaged run is refused or answers wrongly, never crashes.
@Suite struct TableLayersTests {
    /// The fewest slots a file table has, so that a few thousand keys make many layers.
    static let cap = TaggedKeySet.minimumFileSlots

    /// Random batches of new keys, retags of old ones, and batches taken back, against a model.
    @Test(arguments: [1 as UInt64, 2, 3])
    func aLayeredVoterTableAnswersAsADictionary(seed: UInt64) throws {
        let files = TableFileFixture()
        let layers = TableLayers<TaggedKeySet>(directory: files.directory, name: "voters", capSlots: Self.cap)
        let table = try layers.fresh(slots: Self.cap)
        table.keep(in: layers)
        var rng = SplitMix64(seed: seed)
        var model: [Key128: UInt32] = [:]
        var known: [Key128] = []
        var nextTag: UInt32 = 1
        for round in 0..<400 {
            let size = Int(rng.next() % 40) + 1
            try table.reserve(size)
            var undo: [(Key128, UInt32?)] = []
            for _ in 0..<size {
                if !known.isEmpty && rng.next() % 4 == 0 {
                    let key = known[Int(rng.next() % UInt64(known.count))]
                    #expect(table.insert(key, tag: nextTag) == model[key])
                    undo.append((key, model[key]))
                    table.retag(key, tag: nextTag)
                    model[key] = nextTag
                } else {
                    let key = Key128(a: rng.next(), b: rng.next())
                    #expect(table.insert(key, tag: nextTag) == nil)
                    undo.append((key, nil))
                    model[key] = nextTag
                    known.append(key)
                }
                nextTag += 1
            }
            if rng.next() % 8 == 0 {   // the batch's transaction failed: take it back, newest first
                for (key, previous) in undo.reversed() {
                    if let previous {
                        table.retag(key, tag: previous)
                        model[key] = previous
                    } else {
                        #expect(table.remove(key))
                        model[key] = nil
                        known.removeAll { $0 == key }
                    }
                }
            }
            if round % 50 == 49 { layers.finishBuilding() }
        }
        #expect(layers.layers.count > 1, "the table never went into layers")
        #expect(layers.buildError == nil)
        let absent = (0..<2_000).map { _ in Key128(a: rng.next(), b: rng.next()) }
        func expectAnswers(_ t: TaggedKeySet, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(model.allSatisfy { t.tag(of: $0.key) == $0.value }, sourceLocation: sourceLocation)
            #expect(absent.allSatisfy { t.tag(of: $0) == nil }, sourceLocation: sourceLocation)
        }
        expectAnswers(table)
        layers.finishBuilding()
        expectAnswers(table)
        // Runs stay few: each merges the ones no larger than itself.
        let runs = layers.layers.count
        #expect(runs <= 2 + Int(log2(Double(model.count) / Double(Self.cap / 4 * 3))) + 1, "\(runs) layers")

        // What a snapshot records opens again to the same answers.
        try table.sync()
        let records = layers.records(currentSlots: table.slotCount)
        let again = TableLayers<TaggedKeySet>(directory: files.directory, name: "voters", capSlots: Self.cap)
        let reopened = try again.load(records)
        reopened.keep(in: again)
        expectAnswers(reopened)
        // And nothing it lists is removed as unused; a file it does not list is.
        FileManager.default.createFile(atPath: files.directory + "/voters.999.run", contents: Data([1, 2, 3]))
        again.removeUnusedFiles(keeping: records)
        #expect(!FileManager.default.fileExists(atPath: files.directory + "/voters.999.run"))
        expectAnswers(reopened)
        let reopenedAgain = try TableLayers<TaggedKeySet>(directory: files.directory, name: "voters", capSlots: Self.cap).load(records)
        #expect(reopenedAgain.slotCount == table.slotCount)
    }

    /// The idempotency index in layers: every key's event is found, a key already held by an
    /// earlier event in any layer is told, and an entry already there is not added twice.
    @Test func aLayeredKeyIndexFindsEveryKeyInEveryLayer() throws {
        let files = TableFileFixture()
        let cap = SequenceIndex.minimumFileSlots
        let layers = TableLayers<SequenceIndex>(directory: files.directory, name: "keys", capSlots: cap)
        let index = try layers.fresh(slots: cap)
        index.keep(in: layers)
        var rng = SplitMix64(seed: 9)
        var holder: [Key128] = [Key128(a: 0, b: 0)]   // the key of event i (event 0 is none)
        var firstSeq: [Key128: UInt64] = [:]
        for round in 0..<300 {
            let size = Int(rng.next() % 30) + 1
            try index.reserve(size)
            var batch: [(key: Key128, seq: UInt64)] = []
            var expectedHeld: [(index: Int, earlier: UInt64)] = []
            for n in 0..<size {
                let seq = UInt64(holder.count)
                let key: Key128
                if holder.count > 1 && rng.next() % 5 == 0 {
                    key = holder[Int(rng.next() % UInt64(holder.count - 1)) + 1]
                    if let first = firstSeq[key] { expectedHeld.append((n, first)) }
                } else {
                    key = Key128(a: rng.next(), b: rng.next())
                }
                holder.append(key)
                if firstSeq[key] == nil && !batch.contains(where: { $0.key == key }) { firstSeq[key] = seq }
                batch.append((key, seq))
            }
            let held = index.insert(batch) { n, candidate in holder[Int(candidate)] == batch[n].key }
            #expect(held.map(\.index) == expectedHeld.map(\.index) && held.map(\.earlier) == expectedHeld.map(\.earlier))
            if round % 60 == 59 { layers.finishBuilding() }
        }
        #expect(layers.layers.count > 1)
        let lastSeq = UInt64(holder.count - 1)
        func expectAnswers(_ i: SequenceIndex, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(firstSeq.allSatisfy { key, seq in
                i.firstEvent(holding: key, lastSeq: lastSeq) { holder[Int($0)] == key } == seq
            }, sourceLocation: sourceLocation)
            #expect((0..<1_000).allSatisfy { _ in
                let key = Key128(a: rng.next(), b: rng.next())
                return i.firstEvent(holding: key, lastSeq: lastSeq) { holder[Int($0)] == key } == nil
            }, sourceLocation: sourceLocation)
        }
        expectAnswers(index)
        layers.finishBuilding()
        expectAnswers(index)
        // A replay of a key again at its own event (an index ahead of the replay) adds nothing.
        let (key, seq) = firstSeq.first!
        let count = index.count
        #expect(index.insert([(key, seq)]) { _, _ in false }.isEmpty && index.count == count)
        let again = TableLayers<SequenceIndex>(directory: files.directory, name: "keys", capSlots: cap)
        let reopened = try again.load(layers.records(currentSlots: index.slotCount))
        reopened.keep(in: again)
        expectAnswers(reopened)
    }

    /// A removal cut short by a kill can leave a key in two slots; a lookup finds the first on
    /// its probe path, and a run built from the table must keep that one, not the stale copy.
    @Test func aRunKeepsTheCopyOfAKeyThatALookupFinds() throws {
        let files = TableFileFixture()
        let table = TaggedKeySet(capacity: 100)
        let key = Key128(a: 5, b: 7 << 32)
        table.insert(key, tag: 3)
        let home = table.find(key)
        table.store(key, tag: 99, at: (home + 1) & table.mask)   // the stale copy, later on the path
        #expect(table.tag(of: key) == 3)
        let run = try SortedRun.build(from: [table.runSource], wordsPerEntry: 2, secondMask: TaggedKeySet.secondKeyMask,
                                      to: files.directory + "/voters.1.run")
        #expect(run.count == 1 && run.word(0, 1) & 0xFFFF_FFFF == 3)
    }

    /// Growing ahead (an import's expected rows) doubles a table in place up to its layers' cap,
    /// never past it and never into a layer, and every key keeps its tag or sequence number.
    @Test func growingAheadStopsAtTheCapAndKeepsEveryKey() throws {
        let files = TableFileFixture()
        let voterLayers = TableLayers<TaggedKeySet>(directory: files.directory, name: "voters", capSlots: Self.cap * 8)
        let voters = try voterLayers.fresh(slots: Self.cap)
        voters.keep(in: voterLayers)
        let keyLayers = TableLayers<SequenceIndex>(directory: files.directory, name: "keys", capSlots: SequenceIndex.minimumFileSlots * 8)
        let index = try keyLayers.fresh(slots: SequenceIndex.minimumFileSlots)
        index.keep(in: keyLayers)
        let keys = randomKeys(Self.cap / 2, seed: 11)
        try voters.reserve(keys.count)
        try index.reserve(keys.count)
        for (i, k) in keys.enumerated() {
            voters.insert(k, tag: UInt32(i + 1))
            index.insert(k, seq: UInt64(i + 1))
        }
        let slots = (voters.slotCount, index.slotCount)
        try voters.reserveAhead(1 << 30, whenShortOf: 1)
        try index.reserveAhead(1 << 30, whenShortOf: 1)
        #expect(voters.slotCount == slots.0 && index.slotCount == slots.1, "there was room: nothing grew")
        try voters.reserveAhead(1 << 30, whenShortOf: Self.cap)
        try index.reserveAhead(1 << 30, whenShortOf: SequenceIndex.minimumFileSlots)
        #expect(voters.slotCount == Self.cap * 8 && index.slotCount == SequenceIndex.minimumFileSlots * 8)
        #expect(voterLayers.layers.isEmpty && keyLayers.layers.isEmpty)
        #expect(keys.enumerated().allSatisfy { i, k in voters.tag(of: k) == UInt32(i + 1) })
        #expect(keys.enumerated().allSatisfy { i, k in index.firstEvent(holding: k, lastSeq: UInt64(keys.count)) { $0 == UInt64(i + 1) } == UInt64(i + 1) })
    }

    /// Layers whose generations repeat (two layers in one file) or are too many are refused.
    @Test func layersThatShareAFileAreRefused() throws {
        let files = TableFileFixture()
        let layers = TableLayers<TaggedKeySet>(directory: files.directory, name: "voters", capSlots: Self.cap)
        let table = try layers.fresh(slots: Self.cap)
        let current = layers.records(currentSlots: table.slotCount)
        #expect(throws: TableError.self) { try layers.load([current[0], current[0]]) }
        #expect(throws: TableError.self) { try layers.load(Array(repeating: current[0], count: 65)) }
        var far = current[0]
        far.generation = .max
        #expect(throws: TableError.self) { try layers.load([far]) }
    }

    /// A run whose file was cut short is refused; one whose bucket index is garbage answers
    /// wrongly but reads nothing outside its entries.
    @Test func aDamagedRunIsRefusedOrHarmless() throws {
        let files = TableFileFixture()
        let table = TaggedKeySet(capacity: 5_000)
        let keys = randomKeys(5_000, seed: 5)
        for (i, k) in keys.enumerated() { table.insert(k, tag: UInt32(i + 1)) }
        let path = files.directory + "/voters.1.run"
        let run = try SortedRun.build(from: [table.runSource], wordsPerEntry: 2, secondMask: TaggedKeySet.secondKeyMask, to: path)
        #expect(run.count == 5_000)
        #expect(throws: TableError.self) { try SortedRun(path: path, wordsPerEntry: 2, count: 4_999) }
        #expect(throws: TableError.self) { try SortedRun(path: path, wordsPerEntry: 1, count: 5_000) }
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        #expect(truncate(path, off_t(size - 16)) == 0)
        #expect(throws: TableError.self) { try SortedRun(path: path, wordsPerEntry: 2, count: 5_000) }
        let whole = try SortedRun.build(from: [table.runSource], wordsPerEntry: 2, secondMask: TaggedKeySet.secondKeyMask, to: path)
        let fd = open(path, O_RDWR)
        var garbage = [UInt8](repeating: 0xFF, count: 4_096)
        #expect(pwrite(fd, &garbage, garbage.count, off_t(TableBlock.pageBytes)) == garbage.count)
        close(fd)
        let damaged = try SortedRun(path: path, wordsPerEntry: 2, count: whole.count)
        var found = 0
        for key in keys {
            for i in damaged.bucket(of: key.a) where damaged.word(i, 0) == key.a { found += 1 }
        }
        #expect(found <= keys.count)
    }
}
