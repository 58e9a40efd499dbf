#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization
public import BallotCollections
public import BallotDomain
public import BallotStore
public import BallotFormat

// The audit's threads and the lock they share, on POSIX threads directly: Foundation's `Thread`
// and `NSCondition` would load Foundation (and ICU) into the auditor's tool for these alone,
// which costs every start of it several milliseconds.

/// A thread running `body`, with a stack of `stackSize` bytes; `join` waits for it to end, and
/// must be called once (a thread never joined would keep its resources to the end).
package final class HelperThread {
    private var thread = pthread_t()
    private var joined = false

    package init(stackSize: Int, _ body: @escaping @Sendable () -> Void) {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        let sized = pthread_attr_setstacksize(&attributes, stackSize)
        precondition(sized == 0, "a thread stack of \(stackSize) bytes (error \(sized))")
        let context = Unmanaged.passRetained(Body(body)).toOpaque()
        let started = pthread_create(&thread, &attributes, { context in
            let body = Unmanaged<Body>.fromOpaque(context!).takeRetainedValue()
            body.run()
            return nil
        }, context)
        precondition(started == 0, "cannot start a thread (error \(started))")
    }

    package func join() {
        precondition(!joined, "a thread joined twice")
        pthread_join(thread, nil)
        joined = true
    }

    deinit { assert(joined, "a helper thread dropped without being joined") }

    private final class Body {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }
}

/// A flag one thread sets and another polls: stop what you are doing.
final class StopSignal: Sendable {
    private let stopped = Atomic<Bool>(false)

    func stop() { stopped.store(true, ordering: .relaxed) }
    var isStopped: Bool { stopped.load(ordering: .relaxed) }
}

/// A mutex with a condition variable, as `NSCondition` has them: `wait` is called with the lock
/// held, and releases it while it sleeps.
final class Condition: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }
    func wait() { pthread_cond_wait(condition, mutex) }
    func broadcast() { pthread_cond_broadcast(condition) }
}
