import BallotStore
public import BallotFormat
import BallotAudit

/// One slice of a follower's chunk being written and committed on a thread of its own
/// (`Ledger.replicate`), while the writer verifies the next: an LMDB write transaction is begun,
/// used and committed by one thread. `wait` must be called once: it joins the thread and throws
/// what the store threw.
final class SliceStore {
    private let thread: HelperThread
    private let outcome = Outcome()

    private final class Outcome: @unchecked Sendable {
        /// Written by the store's thread before it ends; read after `join`.
        var error: (any Error)?
    }

    /// Starts the store of `slice`; `ledgerID`, when given, is stored as the ledger's id in the
    /// same transaction (a follower's first slice, which takes its primary's id).
    init(_ slice: WriterState.VerifiedSlice, of chunk: RecordChunk, env: Environment, _ dbs: LedgerDatabases, ledgerID: [UInt8]?) {
        let outcome = self.outcome
        thread = HelperThread(stackSize: 1 << 20) {
            do {
                let first = chunk.first + UInt64(slice.records.lowerBound)
                try env.write("storing \(slice.records.count) events from \(first), as the primary sent them") { txn in
                    if let ledgerID { try txn.put(Array("ledger_id".utf8), ledgerID, in: dbs.meta) }
                    try WriterState.store(slice, of: chunk, in: txn, dbs)
                }
            } catch {
                outcome.error = error
            }
        }
    }

    /// Waits for the store to end; throws what it threw.
    func wait() throws {
        thread.join()
        if let error = outcome.error { throw error }
    }
}
