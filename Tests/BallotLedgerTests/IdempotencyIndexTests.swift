import Testing
@testable import BallotLedger
@testable import BallotFormat
@testable import BallotAudit
@testable import BallotDomain

/// The index keeps 32 bits of each key and of each sequence number, and tells candidates apart
/// by the key the record holds: checked here past 2^32 events, with records made up in memory.
@Suite struct IdempotencyIndexTests {
    func record(_ seq: UInt64, key: String) -> RecordedEvent {
        RecordedEvent(seq: seq, timestamp: Timestamp(microseconds: 0), actor: .system, idempotencyKey: key,
                      event: .votingOpened(election: Slug(unchecked: "e")))
    }

    /// The scope of the records below (`votingOpened`).
    let open = IdempotencyScope.command("election.open")

    @Test func findsTheEventPastTwoToTheThirtyTwo() throws {
        let big: UInt64 = (1 << 32) + 5
        let stored = [5: record(5, key: "first"), big: record(big, key: "second")]
        var index = IdempotencyIndex()
        index.insert(IdempotencySlot.key("first"), seq: 5)
        index.insert(IdempotencySlot.key("second"), seq: big)
        var reads: [UInt64] = []
        let lookup = { (seq: UInt64) -> RecordedEvent? in reads.append(seq); return stored[seq] }
        #expect(try index.original(of: "first", in: open, slot: IdempotencySlot.key("first"), lastSeq: big + 10, record: lookup)?.seq == 5)
        #expect(try index.original(of: "second", in: open, slot: IdempotencySlot.key("second"), lastSeq: big + 10, record: lookup)?.seq == big)
        #expect(reads == [5, 5, big])  // the second key's low bits first name event 5, which holds another key
        #expect(try index.original(of: "new", in: open, slot: IdempotencySlot.key("new"), lastSeq: big + 10, record: lookup) == nil)
        // The same key in another scope is another key.
        #expect(try index.original(of: "first", in: .votes, slot: IdempotencySlot.key("first"), lastSeq: big + 10, record: lookup) == nil)
    }

    @Test func aSlotThatNamesAMissingEventIsCorruption() {
        var index = IdempotencyIndex()
        index.insert(IdempotencySlot.key("lost"), seq: 7)
        #expect(throws: LedgerError.self) {
            try index.original(of: "lost", in: .command("election.open"), slot: IdempotencySlot.key("lost"), lastSeq: 100) { _ in nil }
        }
    }
}
