import Testing
import Foundation
import Synchronization
@testable import BallotLedger
@testable import BallotFormat
@testable import BallotAudit

/// The queue that shares an audit's segments among threads, driven by real threads.
@Suite struct SegmentQueueTests {
    /// Runs `body` on a thread of its own; the semaphore signals when it has returned.
    func onThread(_ body: @escaping @Sendable () -> Void) -> DispatchSemaphore {
        let done = DispatchSemaphore(value: 0)
        Thread {
            body()
            done.signal()
        }.start()
        return done
    }

    /// The consumer's loop, as `Audit.run` has it: take the next result, else work on a piece
    /// itself, else wait. Returns the results in the order taken.
    func consume(_ queue: SegmentQueue<Int>, work: (Int) -> Int) -> [Int] {
        var taken: [Int] = []
        var i = 0
        while i < queue.count {
            if let result = queue.take(i) {
                taken.append(result)
                i += 1
            } else if let piece = queue.tryClaim() {
                queue.publish(piece, work(piece))
            } else {
                queue.wait(for: i)
            }
        }
        return taken
    }

    /// Two helpers and the consumer share the work; every result comes once, in order.
    @Test func resultsArriveInOrderWhoeverDidTheWork() {
        let queue = SegmentQueue<Int>(count: 3_000, window: 4)
        let byHelpers = Atomic<Int>(0)
        let started = DispatchSemaphore(value: 0)
        let helpers = (0..<2).map { _ in
            onThread {
                var first = true
                while let i = queue.claim() {
                    byHelpers.add(1, ordering: .relaxed)
                    if first {
                        started.signal()
                        first = false
                    }
                    if i % 7 == 0 { usleep(50) }  // slower pieces, so that the consumer takes some
                    queue.publish(i, i * 2)
                }
            }
        }
        started.wait()  // (on a loaded machine the consumer could otherwise do it all before the helpers run)
        var byConsumer = 0
        let taken = consume(queue) { i in
            byConsumer += 1
            return i * 2
        }
        #expect(taken == (0..<3_000).map { $0 * 2 })
        for helper in helpers { #expect(helper.wait(timeout: .now() + 10) == .success) }
        #expect(byConsumer + byHelpers.load(ordering: .relaxed) == 3_000 && byHelpers.load(ordering: .relaxed) > 0)
        #expect(queue.claim() == nil && queue.tryClaim() == nil)
    }

    /// With no helper, the consumer does everything itself; the window never blocks it.
    @Test func aConsumerAloneDoesEveryPiece() {
        let queue = SegmentQueue<Int>(count: 100, window: 1)
        #expect(consume(queue) { $0 + 1 } == Array(1...100))
    }

    /// A helper waiting for the window to move, and a consumer waiting for a result, are both
    /// released by a cancel; later claims get nothing and later results are dropped.
    @Test func aCancelReleasesEveryWaiter() {
        let queue = SegmentQueue<Int>(count: 10, window: 2)
        let first = queue.claim(), second = queue.claim()
        #expect(first == 0 && second == 1 && queue.tryClaim() == nil)
        let blocked = onThread { _ = queue.claim() }  // the window is full: it waits
        let waiting = onThread { queue.wait(for: 0) }
        usleep(20_000)
        queue.cancel()
        #expect(blocked.wait(timeout: .now() + 10) == .success)
        #expect(waiting.wait(timeout: .now() + 10) == .success)
        queue.publish(0, 42)
        #expect(queue.take(0) == nil && queue.claim() == nil)
    }

    /// No piece is claimed `window` or more past the last one taken: a helper waits until the
    /// consumer takes one.
    @Test func claimsStayWithinTheWindow() {
        let queue = SegmentQueue<Int>(count: 10, window: 2)
        #expect(queue.claim() == 0 && queue.claim() == 1)
        let third = Atomic<Int>(-1)
        let helper = onThread { third.store(queue.claim() ?? -2, ordering: .releasing) }
        usleep(20_000)
        #expect(third.load(ordering: .acquiring) == -1)  // still waiting
        queue.publish(0, 100)
        #expect(queue.take(0) == 100)
        #expect(helper.wait(timeout: .now() + 10) == .success && third.load(ordering: .acquiring) == 2)
    }

    /// A result handed back is given out again, up to a window's worth; none is made up.
    @Test func resultsHandedBackAreGivenOutAgain() {
        let queue = SegmentQueue<[Int]>(count: 4, window: 2)
        #expect(queue.reusable() == nil)
        for n in 1...3 { queue.recycle(Array(repeating: n, count: n)) }
        let first = queue.reusable(), second = queue.reusable()
        #expect(Set([first, second].compactMap { $0?.count }) == [1, 2] && queue.reusable() == nil)
    }
}
