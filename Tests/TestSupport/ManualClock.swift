import Synchronization
public import BallotDomain

/// A clock the test sets by hand.
public final class ManualClock: LedgerClock {
    private let current: Mutex<Timestamp>

    public init(_ start: Timestamp) { current = Mutex(start) }
    public convenience init(_ rfc3339: String) { self.init(Timestamp(rfc3339: rfc3339)!) }

    public func now() -> Timestamp { current.withLock { $0 } }
    public func set(_ t: Timestamp) { current.withLock { $0 = t } }
    public func set(_ rfc3339: String) { set(Timestamp(rfc3339: rfc3339)!) }
    public func advance(seconds: Int64) { current.withLock { $0.microseconds += seconds * 1_000_000 } }
}
