import Foundation
import Synchronization

/// Passes batches from one producer thread to one consumer, in order, holding at most `limit`
/// at a time so that a producer that runs ahead cannot fill memory.
///
/// A consumer that finds nothing queued spins for a while before it sleeps: the next batch is
/// usually microseconds away, and a sleeping consumer costs both threads a system call (the
/// wait, and the wake-up the producer must send).
final class Handoff<Batch: Sendable>: @unchecked Sendable {
    /// How many times `take` looks for a batch before it sleeps: some tens of microseconds.
    static var spins: Int { 100_000 }
    private let condition = NSCondition()
    /// Batches put and not yet taken, plus one once finished: what the spinning consumer watches
    /// (the lock's state decides; this only ends the spin early).
    private let news = Atomic<Int>(0)
    private var waiting: [Batch] = []
    private var head = 0
    private var finished = false
    private var cancelled = false
    private let limit: Int

    init(limit: Int) { self.limit = limit }

    /// Waits for room, then queues `batch`; false (and nothing queued) once the consumer has
    /// cancelled.
    func put(_ batch: Batch) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while waiting.count - head >= limit && !cancelled { condition.wait() }
        guard !cancelled else { return false }
        if head > limit {
            waiting.removeFirst(head)
            head = 0
        }
        waiting.append(batch)
        news.add(1, ordering: .releasing)
        condition.broadcast()
        return true
    }

    /// No more batches will come.
    func finish() {
        condition.lock()
        finished = true
        news.add(1, ordering: .releasing)
        condition.broadcast()
        condition.unlock()
    }

    /// The next batch, waiting for one; nil once the producer has finished and all are taken.
    func take() -> Batch? {
        var spun = 0
        while news.load(ordering: .acquiring) == 0 && spun < Self.spins { spun += 1 }
        condition.lock()
        defer { condition.unlock() }
        while head == waiting.count && !finished { condition.wait() }
        guard head < waiting.count else { return nil }
        let batch = waiting[head]
        head += 1
        news.subtract(1, ordering: .relaxed)
        condition.broadcast()
        return batch
    }

    /// The consumer stops: queued batches are dropped and the producer's next `put` says so.
    func cancel() {
        condition.lock()
        cancelled = true
        waiting.removeAll()
        head = 0
        condition.broadcast()
        condition.unlock()
    }
}
