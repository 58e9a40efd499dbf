import Foundation

/// Lets subscribers wait for the ledger to grow past a size, without polling.
final class CommitSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var size: UInt64 = 0
    private var closed = false
    private var waiters: [(after: UInt64, callback: @Sendable (Bool) -> Void)] = []

    /// Calls `callback(true)` once the ledger holds more than `size` events (at once if it
    /// already does), or `callback(false)` when the daemon stops.
    func notify(whenMoreThan size: UInt64, _ callback: @escaping @Sendable (Bool) -> Void) {
        lock.lock()
        if closed {
            lock.unlock()
            callback(false)
        } else if self.size > size {
            lock.unlock()
            callback(true)
        } else {
            waiters.append((size, callback))
            lock.unlock()
        }
    }

    func announce(size: UInt64) {
        lock.lock()
        self.size = size
        let ready = waiters.filter { $0.after < size }
        waiters.removeAll { $0.after < size }
        lock.unlock()
        for w in ready { w.callback(true) }
    }

    /// Whether the daemon is stopping (`close` was called).
    var isClosed: Bool { lock.withLock { closed } }

    /// Ends every wait (at shutdown).
    func close() {
        lock.lock()
        closed = true
        let all = waiters
        waiters.removeAll()
        lock.unlock()
        for w in all { w.callback(false) }
    }
}
