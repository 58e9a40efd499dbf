public import BallotDomain
public import BallotCollections
public import BallotFormat

/// Reads an earlier event by its sequence number: nil when there is none.
package typealias RecordLookup = (UInt64) throws -> RecordedEvent?

// A follower's check of the records its primary sent, before it stores them: the audit's own
// engine, run on the records as sent rather than as stored. The segment checker decodes them
// (votes at fixed offsets) and hashes their leaves sixteen at a time; the rule pass takes them
// from the follower's state, votes a run at a time. So a follower accepts exactly what
// `ballot-replay verify` accepts, at the auditor's speed.

extension Audit {
    /// What checking a run of records from the follower's state gave (the state and Merkle
    /// frontier after them are the caller's, changed in place): the latest timestamp, what the
    /// store must write besides the records, and how to take the keys back. Nothing of it may
    /// be kept when `refusal` is set.
    package struct ChunkCheck {
        /// The first record that does not verify, by sequence number, and why; nil for none.
        package var refusal: (seq: UInt64, reason: String)?
        /// Why an earlier event could not be read, when one could not: the follower's failure,
        /// not the records' (its store is tried again; a refusal would stop replication).
        package var unreadable: (any Error)?
        package var lastTimestamp: Timestamp
        /// The Merkle nodes the records' leaves complete, from the lowest level stored, in key order.
        package var completedNodes: [(level: Int, index: UInt64, hash: MerkleHash)]
        /// The idempotency keys added to the index (a store that fails takes them back).
        package var keysAdded: [(key: Key128, seq: UInt64)]
        /// The elections the records changed (by position), each with the votes-over-time
        /// buckets (their starts) that changed.
        package var changed: [(election: Int, buckets: [Int64])]
    }

    /// Checks `records` (consecutive, from event `state.lastSeq + 1`) as `verify` checks stored
    /// ones, and applies them to `state`, `frontier` and `keyIndex` as it goes, noting in
    /// `journal` what it changes. Earlier events (an invalidation's vote, a repeated key's
    /// first use) are read with `earlier`; the records' own, from the records themselves.
    /// `pinnedKey` and `ledgerID` are as for `verify`.
    package static func checkChunk(_ records: [(seq: UInt64, bytes: UnsafeRawBufferPointer)], state: inout LedgerState,
                                   frontier: inout MerkleFrontier, lastTimestamp: Timestamp, keyIndex: SequenceIndex,
                                   keySeed: UInt64, ledgerID: [UInt8], pinnedKey: Digest32?, journal: inout LedgerState.Journal,
                                   earlier: RecordLookup) throws -> ChunkCheck {
        let first = state.lastSeq + 1
        var rules = RulePass(AuditStart(state: state, frontier: frontier, lastTimestamp: lastTimestamp, keyIndex: keyIndex, keySeed: keySeed),
                             pinnedKey: pinnedKey, maxFindings: 1, ledgerID: ledgerID)
        // The caller's state is the pass's while it runs: one owner, so that what it changes is
        // changed in place rather than copied.
        state = LedgerState(voters: TaggedKeySet(capacity: 1))
        rules.journal = journal
        rules.keepsNodes = true
        rules.keysAdded = []
        rules.start(checkers: 1)
        defer {
            state = rules.state
            frontier = rules.frontier
            journal = rules.journal!
        }
        guard let last = records.last?.seq, records.first?.seq == first else {
            return ChunkCheck(refusal: records.first.map { ($0.seq, "the follower holds \(first - 1) events: the next must be event \(first)") },
                              unreadable: nil, lastTimestamp: lastTimestamp, completedNodes: [], keysAdded: [], changed: [])
        }
        // A layout whose one segment is never full, so that the leaves go to the frontier one at
        // a time and every node they complete is kept (a whole subtree would be compared instead).
        let size = 1 << (Int.bitWidth - (records.count + 1).leadingZeroBitCount)
        var checker = SegmentChecker(worker: 0, layout: SegmentLayout(start: first, last: last, size: size), keySeed: keySeed)
        var batch = Batch(worker: 0, first: first)
        checker.check(records, { _, _ in }, into: &batch)
        // An earlier event that cannot be read is the follower's failure, not the record's.
        var unreadable: (any Error)?
        let lookup: RecordLookup = { seq in
            do {
                guard seq >= first else { return try earlier(seq) }
                guard seq <= last else { return nil }
                return try RecordCodec.decode(records[Int(seq - first)].bytes, seq: seq)
            } catch {
                if seq < first, unreadable == nil { unreadable = error }
                throw error
            }
        }
        let undecodable = Set(batch.findings.map(\.events.lowerBound))
        try rules.replay(batch, record: lookup) { _, _ in }
        // The finding about the earliest record (a follower's pass names one record in each).
        let refusal = (rules.recordFindings + rules.findings).enumerated()
            .min { ($0.element.events.lowerBound, $0.offset) < ($1.element.events.lowerBound, $1.offset) }
            .map { found -> (seq: UInt64, reason: String) in
                let seq = found.element.events.lowerBound
                return (seq, undecodable.contains(seq) ? "it does not decode: \(found.element.what)" : found.element.what)
            }
        // The frontier gives them a level at a time; the store wants them in key order (by the
        // last leaf under each, then level), which LMDB appends fastest.
        let nodes = rules.completedNodes.sorted {
            (($0.index + 1) << UInt64($0.level), $0.level) < (($1.index + 1) << UInt64($1.level), $1.level)
        }
        return ChunkCheck(refusal: refusal, unreadable: unreadable, lastTimestamp: rules.lastTime, completedNodes: nodes,
                          keysAdded: rules.keysAdded ?? [], changed: rules.changed.map { ($0.election, $0.buckets.starts) })
    }
}

/// The votes-over-time buckets a follower's chunk changed in one election, each once: a bit
/// per bucket near the first one met (a vote's bucket is nearly always close to the others'),
/// a set for the rest. (Noted for every vote: a sort of them all cost more than the rules.)
struct BucketSet {
    private var base: Int64?
    private var bits: [UInt64] = []
    private var far: Set<Int64> = []
    private var near: [Int64] = []

    /// Notes the bucket starting at `start`, of `width` microseconds (as the election's are).
    mutating func insert(_ start: Int64, width: Int64) {
        let base = base ?? start
        self.base = base
        let (offset, overflow) = start.subtractingReportingOverflow(base)
        let k = overflow ? -1 : offset / width
        guard offset % width == 0, k >= 0, k < Self.nearBuckets else {
            far.insert(start)
            return
        }
        let word = Int(k >> 6), bit = UInt64(1) << UInt64(k & 63)
        if word >= bits.count { bits += repeatElement(0, count: word + 1 - bits.count) }
        if bits[word] & bit == 0 {
            bits[word] |= bit
            near.append(start)
        }
    }

    /// Buckets past this many widths after the first go to the set.
    static let nearBuckets: Int64 = 1 << 16

    var starts: [Int64] { near + far }
}

