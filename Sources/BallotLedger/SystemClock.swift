public import BallotDomain
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
public import BallotCollections
public import BallotStore
public import BallotFormat
public import BallotAudit

/// The wall clock (`CLOCK_REALTIME`), in microseconds.
public struct SystemClock: LedgerClock {
    public init() {}
    public func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(microseconds: Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000)
    }
}
