import Testing
import Foundation
@testable import BallotLedger

/// The queue between the audit's two passes, driven by real threads.
@Suite struct HandoffTests {
    /// Runs `body` on a thread of its own; the semaphore signals when it has returned.
    func onThread(_ body: @escaping @Sendable () -> Void) -> DispatchSemaphore {
        let done = DispatchSemaphore(value: 0)
        Thread {
            body()
            done.signal()
        }.start()
        return done
    }

    @Test func batchesArriveInOrderThenNil() {
        let handoff = Handoff<Int>(limit: 2)
        let producer = onThread {
            for i in 0..<5_000 { _ = handoff.put(i) }
            handoff.finish()
        }
        var taken: [Int] = []
        while let i = handoff.take() { taken.append(i) }
        #expect(taken == Array(0..<5_000))
        #expect(handoff.take() == nil)
        #expect(producer.wait(timeout: .now() + 10) == .success)
    }

    /// A consumer waiting on an empty queue (spinning, then asleep) sees the end.
    @Test func aWaitingConsumerSeesTheEnd() {
        let handoff = Handoff<Int>(limit: 2)
        let producer = onThread {
            Thread.sleep(forTimeInterval: 0.05)
            handoff.finish()
        }
        #expect(handoff.take() == nil)
        #expect(producer.wait(timeout: .now() + 10) == .success)
    }

    /// A producer waiting for room is released by a cancel, and puts nothing more.
    @Test func aCancelReleasesAWaitingProducer() {
        let handoff = Handoff<Int>(limit: 1)
        let refused = Flag(false)
        let producer = onThread {
            _ = handoff.put(1)
            refused.set(!handoff.put(2))   // waits: the queue holds one
        }
        Thread.sleep(forTimeInterval: 0.05)
        handoff.cancel()
        #expect(producer.wait(timeout: .now() + 10) == .success)
        #expect(refused.value)
    }

    /// A flag shared with a thread.
    final class Flag: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: Bool
        init(_ value: Bool) { stored = value }
        var value: Bool { lock.withLock { stored } }
        func set(_ value: Bool) { lock.withLock { stored = value } }
    }
}
