import Synchronization
public import BallotCollections
public import BallotDomain
public import BallotStore
public import BallotFormat

/// Shares out numbered pieces of work (an audit's segments, 0..<count) among threads, and hands
/// their results to one consumer in order.
///
/// Helper threads `claim` the next piece and `publish` its result. The consumer `take`s results
/// in order; while the one it needs next is not ready, it claims a piece itself (`tryClaim`)
/// rather than wait, so that whichever thread is ahead does the work that can run in parallel
/// and every core stays busy however the work divides on a given machine. At most `window`
/// pieces are claimed past the last one taken, so that a consumer that falls behind holds a
/// bounded number of results. A result the consumer is done with can be handed back
/// (`recycle`) for a worker to fill again (`reusable`), so that its storage is not freed on one
/// thread and allocated again on another for every piece.
final class SegmentQueue<Result: Sendable>: @unchecked Sendable {
    /// How many times `wait(for:)` looks for the result before it sleeps: some tens of
    /// microseconds. The result is usually that close, and a sleeping consumer costs both
    /// threads a system call (the wait, and the wake-up the publisher must send).
    static var spins: Int { 100_000 }

    let count: Int
    let window: Int
    private let condition = Condition()
    private var claimed = 0
    private var taken = 0
    /// Results published and not yet taken, piece k in slot k % window.
    private var results: [Result?]
    private var cancelled = false
    /// Results handed back, to be filled again.
    private var spare: [Result] = []
    /// Bumped by every `publish`: what a spinning `wait(for:)` watches (the lock's state decides).
    private let published = Atomic<Int>(0)

    init(count: Int, window: Int) {
        precondition(window > 0, "a window of \(window) pieces")
        self.count = count
        self.window = window
        results = Array(repeating: nil, count: window)
    }

    /// A helper's next piece, waiting while `window` of them are claimed and not yet taken; nil
    /// once every piece is claimed or the consumer has cancelled.
    func claim() -> Int? {
        condition.lock()
        defer { condition.unlock() }
        while !cancelled && claimed < count && claimed >= taken + window { condition.wait() }
        return nextClaim()
    }

    /// The consumer's: the next piece, if one can be claimed without waiting.
    func tryClaim() -> Int? {
        condition.lock()
        defer { condition.unlock() }
        return claimed < taken + window ? nextClaim() : nil
    }

    private func nextClaim() -> Int? {
        guard !cancelled && claimed < count else { return nil }
        claimed += 1
        return claimed - 1
    }

    /// The result of piece `k`, which the caller claimed. Dropped once the consumer has cancelled.
    func publish(_ k: Int, _ result: Result) {
        condition.lock()
        defer { condition.unlock() }
        guard !cancelled else { return }
        results[k % window] = result
        published.add(1, ordering: .releasing)
        condition.broadcast()
    }

    /// The result of piece `k`, the one after the last taken, if it has been published.
    func take(_ k: Int) -> Result? {
        condition.lock()
        defer { condition.unlock() }
        precondition(k == taken, "piece \(k) taken out of order (next is \(taken))")
        guard let result = results[k % window] else { return nil }
        results[k % window] = nil
        taken += 1
        condition.broadcast()  // a helper may be waiting for the window to move
        return result
    }

    /// Waits until the result of piece `k` has been published, or the queue is cancelled.
    func wait(for k: Int) {
        let seen = published.load(ordering: .acquiring)
        var spun = 0
        while published.load(ordering: .acquiring) == seen && spun < Self.spins { spun += 1 }
        condition.lock()
        defer { condition.unlock() }
        while results[k % window] == nil && !cancelled { condition.wait() }
    }

    /// A result the consumer is done with, for `reusable` to give out again.
    func recycle(_ result: consuming Result) {
        condition.lock()
        defer { condition.unlock() }
        if spare.count < window { spare.append(result) }
    }

    /// A result handed back by `recycle`, if there is one.
    func reusable() -> Result? {
        condition.lock()
        defer { condition.unlock() }
        return spare.popLast()
    }

    /// The consumer stops: results not yet taken are dropped, and helpers get no more pieces.
    func cancel() {
        condition.lock()
        defer { condition.unlock() }
        cancelled = true
        results = Array(repeating: nil, count: window)
        condition.broadcast()
    }
}
