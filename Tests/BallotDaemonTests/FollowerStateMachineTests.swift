import Testing
import BallotDomain
import BallotFormat
import BallotProtocol
@testable import BallotDaemon

/// The follower's decisions, without sockets or a ledger.
@Suite struct FollowerStateMachineTests {
    typealias Machine = FollowerStateMachine
    static let id = [UInt8](repeating: 7, count: 16)
    static let root = Digest32(hex: String(repeating: "ab", count: 32))!
    static let otherRoot = Digest32(hex: String(repeating: "cd", count: 32))!

    static func start(from: UInt64, size: UInt64, root: Digest32 = root) -> ReplicationStart {
        ReplicationStart(from: from, ledgerID: id, ledgerSize: size, rootBefore: root)
    }

    static func chunk(from first: UInt64, count: Int) -> RecordChunk {
        var chunk = RecordChunk(first: first)
        for i in 0..<count { [UInt8](repeating: UInt8(i % 200 + 1), count: 10).withUnsafeBytes { chunk.append($0) } }
        return chunk
    }

    static func header(_ chunk: RecordChunk, size: UInt64) -> ChunkHeader {
        ChunkHeader(records: chunk.count, from: chunk.first, bytes: chunk.wire.count, ledgerSize: size)
    }

    /// A machine that holds `stored` events and streams from a primary of `size`.
    static func streaming(stored: UInt64 = 10, size: UInt64 = 100) -> Machine {
        var m = Machine(stored: stored)
        _ = m.start()
        _ = m.connected(stored: stored, root: root)
        _ = m.replied(start(from: stored + 1, size: size))
        return m
    }

    @Test func itAsksForTheRecordsAfterThoseItStored() {
        var m = Machine(stored: 41)
        #expect(m.start() == [.connect])
        #expect(m.state == .connecting)
        #expect(m.connected(stored: m.stored, root: Self.root) == [.ask(from: 42)])
        #expect(m.replied(Self.start(from: 42, size: 50)).isEmpty)
        #expect(m.state == .streaming && m.lag == 9)
    }

    @Test func chunksThatWaitedAreStoredTogetherInOrderAndReadingPausesPastTheLimit() {
        var m = Self.streaming(size: 1000)
        let a = Self.chunk(from: 11, count: 5)
        #expect(m.chunkArrived(Self.header(a, size: 1000), a) == [.store(a, ledgerID: Self.id, primarySize: 1000)])
        // While `a` is stored, chunks wait; the limit-th pauses reading.
        var waited: [RecordChunk] = []
        var next = a.end
        for i in 0..<Machine.maxWaiting {
            let c = Self.chunk(from: next, count: 3)
            next = c.end
            waited.append(c)
            let actions = m.chunkArrived(Self.header(c, size: 1000), c)
            #expect(actions == (i == Machine.maxWaiting - 1 ? [.pauseReading] : []), "\(i)")
        }
        // They go to the writer as one store, the records in order.
        var merged = waited[0]
        for c in waited.dropFirst() { merged.append(contentsOf: c) }
        #expect(m.stored(through: a.end) == [.store(merged, ledgerID: Self.id, primarySize: 1000)])
        #expect(merged.first == a.end && merged.count == 3 * Machine.maxWaiting)
        #expect(m.stored(through: merged.end) == [.resumeReading])
        #expect(m.stored == merged.end - 1 && m.lag == 1000 - (merged.end - 1))
    }

    @Test func aPrimaryWhoseHistoryDiffersStopsReplication() {
        var m = Machine(stored: 20)
        _ = m.start()
        _ = m.connected(stored: m.stored, root: Self.root)
        let actions = m.replied(Self.start(from: 21, size: 40, root: Self.otherRoot))
        guard case .halt(let why)? = actions.first else { Issue.record("\(actions)"); return }
        #expect(why.contains("not the one this follower verified"), "\(why)")
        #expect(m.connectionLost("closed").isEmpty && m.reconnectDue().isEmpty)
        // A primary that holds fewer events than the follower says so with `conflict`: stopped too.
        var n = Machine(stored: 20)
        _ = n.start()
        _ = n.connected(stored: 20, root: Self.root)
        #expect(n.refused("conflict", "the follower has events this ledger does not").first == .halt("the primary refused: conflict: the follower has events this ledger does not"))
    }

    @Test func aHeartbeatUpdatesTheLagAndStoresNothing() {
        var m = Self.streaming(stored: 10, size: 10)
        let beat = RecordChunk(first: 11)
        #expect(m.chunkArrived(ChunkHeader(records: 0, from: 11, bytes: 0, ledgerSize: 30), beat).isEmpty)
        #expect(m.lag == 20)
    }

    @Test func aChunkOutOfOrderDropsTheConnectionAndAsksAgainFromWhatIsStored() {
        var m = Self.streaming()
        let wrong = Self.chunk(from: 15, count: 2)
        #expect(m.chunkArrived(Self.header(wrong, size: 100), wrong) == [.disconnect, .reconnect(after: Machine.firstBackoff)])
        #expect(m.state == .disconnected)
        #expect(m.lastError?.contains("the next the follower needs is 11") == true)
        #expect(m.reconnectDue() == [.connect])
        #expect(m.connected(stored: m.stored, root: Self.root) == [.ask(from: 11)])
    }

    @Test func aLostConnectionWaitsForTheChunkBeingStoredBeforeAskingAgain() {
        var m = Self.streaming()
        let a = Self.chunk(from: 11, count: 5), b = Self.chunk(from: 16, count: 5)
        _ = m.chunkArrived(Self.header(a, size: 100), a)
        _ = m.chunkArrived(Self.header(b, size: 100), b)
        #expect(m.connectionLost("gone") == [.disconnect, .reconnect(after: Machine.firstBackoff)])
        // The back-off ends while `a` is still being stored: no connection yet.
        #expect(m.reconnectDue().isEmpty)
        // `b`, received but not stored, is dropped; the next ask starts after `a`.
        #expect(m.stored(through: a.end) == [.connect])
        #expect(m.connected(stored: m.stored, root: Self.root) == [.ask(from: 16)])
    }

    @Test func aStoreThatFailsAfterTheConnectionWasLostStillConnectsAgain() {
        var m = Self.streaming()
        let a = Self.chunk(from: 11, count: 5)
        _ = m.chunkArrived(Self.header(a, size: 100), a)
        _ = m.connectionLost("gone")
        #expect(m.reconnectDue().isEmpty)   // waits for the store
        #expect(m.storeFailed("storage_full", unverified: false) == [.connect])
        #expect(m.connected(stored: m.stored, root: Self.root) == [.ask(from: 11)])
    }

    /// A store that failed part way kept the slices before the failure: the next connection
    /// asks from what the writer holds, not from what the machine was last told.
    @Test func aStoreThatFailedPartWayAsksFromWhatTheWriterHolds() {
        var m = Self.streaming()
        let a = Self.chunk(from: 11, count: 20)
        _ = m.chunkArrived(Self.header(a, size: 100), a)
        #expect(m.storeFailed("storage_full", unverified: false).contains(.disconnect))
        _ = m.reconnectDue()
        #expect(m.connected(stored: 18, root: Self.root) == [.ask(from: 19)])
        #expect(m.stored == 18)
    }

    @Test func theBackoffDoublesToItsCapAndResetsOnceAChunkIsStored() {
        var m = Machine(stored: 0)
        _ = m.start()
        var delays: [Duration] = []
        for _ in 0..<8 {
            let actions = m.connectionLost("refused")
            guard case .reconnect(let after)? = actions.last else { Issue.record("\(actions)"); return }
            delays.append(after)
            _ = m.reconnectDue()
        }
        #expect(delays == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .milliseconds(1600), .milliseconds(3200), .seconds(5), .seconds(5)])
        _ = m.connected(stored: m.stored, root: Self.root)
        _ = m.replied(Self.start(from: 1, size: 5))
        let a = Self.chunk(from: 1, count: 5)
        _ = m.chunkArrived(Self.header(a, size: 5), a)
        _ = m.stored(through: a.end)
        #expect(m.connectionLost("again") == [.disconnect, .reconnect(after: .milliseconds(100))])
    }

    @Test func aRecordThatDoesNotVerifyStopsReplicationForGood() {
        var m = Self.streaming()
        let a = Self.chunk(from: 11, count: 5), b = Self.chunk(from: 16, count: 5)
        _ = m.chunkArrived(Self.header(a, size: 100), a)
        _ = m.chunkArrived(Self.header(b, size: 100), b)
        let why = "the primary's event 13 does not verify: the rules refuse it"
        #expect(m.storeFailed(why, unverified: true) == [.halt(why), .disconnect])
        #expect(m.state == .stopped(why) && m.stored == 10)
        // Nothing brings it back: not a lost connection, not a timer, not a late chunk.
        #expect(m.connectionLost("closed").isEmpty)
        #expect(m.reconnectDue().isEmpty)
        #expect(m.chunkArrived(Self.header(b, size: 100), b).isEmpty)
    }

    @Test func aStoreThatFailsForTheDiskIsTriedAgainAfterABackoff() {
        var m = Self.streaming()
        let a = Self.chunk(from: 11, count: 5)
        _ = m.chunkArrived(Self.header(a, size: 100), a)
        #expect(m.storeFailed("storage_full", unverified: false) == [.disconnect, .reconnect(after: Machine.firstBackoff)])
        #expect(m.reconnectDue() == [.connect])
        #expect(m.connected(stored: m.stored, root: Self.root) == [.ask(from: 11)])
    }

    @Test func aRefusalOrAReplyForTheWrongStartIsALostConnection() {
        var m = Machine(stored: 5)
        _ = m.start()
        _ = m.connected(stored: m.stored, root: Self.root)
        #expect(m.refused("forbidden", "replicate is not allowed for the observer role") == [.disconnect, .reconnect(after: Machine.firstBackoff)])
        #expect(m.lastError?.contains("forbidden") == true)
        _ = m.reconnectDue()
        _ = m.connected(stored: m.stored, root: Self.root)
        #expect(m.replied(Self.start(from: 1, size: 9)).first == .disconnect)
    }

    @Test func shutdownClosesAndNothingFollows() {
        var m = Self.streaming()
        #expect(m.shutdown() == [.disconnect])
        #expect(m.connectionLost("closed").isEmpty)
        #expect(m.reconnectDue().isEmpty)
    }

    /// A failure stays in `status` until a chunk is stored again: a primary that stalls mid-chunk
    /// every time does not look healthy between its stalls.
    @Test func theLastFailureShowsUntilAChunkIsStored() {
        var m = Self.streaming()
        _ = m.connectionLost("nothing from the primary for 10 s")
        _ = m.reconnectDue()
        _ = m.connected(stored: m.stored, root: Self.root)
        _ = m.replied(Self.start(from: 11, size: 100))
        #expect(m.state == .streaming && m.lastError == "nothing from the primary for 10 s")
        let a = Self.chunk(from: 11, count: 2)
        _ = m.chunkArrived(Self.header(a, size: 100), a)
        _ = m.stored(through: a.end)
        #expect(m.lastError == nil)
    }
}
