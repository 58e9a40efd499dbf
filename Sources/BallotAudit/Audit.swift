public import BallotDomain
import FoundationEssentials  // ProcessInfo
public import BallotCollections
public import BallotStore
public import BallotFormat

/// Something an audit found wrong, and the events it concerns.
public struct AuditFinding: Sendable, CustomStringConvertible {
    public enum Severity: Sendable {
        /// A record was altered, removed, reordered or forged (exit code 2).
        case tampered
        /// The events are intact, but a stored projection or a checkpoint's numbers are not
        /// what they give (exit code 1).
        case disagrees
    }

    public var severity: Severity
    /// One event when the finding names it; several when only a hash over them disagrees (a
    /// Merkle node, a checkpoint's root), so the altered one lies somewhere in between.
    public var events: ClosedRange<UInt64>
    public var what: String

    public var description: String {
        events.count == 1 ? "event \(events.lowerBound): \(what)" : "events \(events.lowerBound)…\(events.upperBound): \(what)"
    }
}

/// What an audit of a whole ledger found.
public struct AuditReport: Sendable {
    /// The sequence number of the last event read.
    public var events: UInt64
    /// The Merkle root recomputed from the records, over the first `rootCovers` of them.
    public var root: MerkleHash
    public var rootCovers: UInt64
    /// Whether a pass stopped at its limit of findings before the end (the root and the
    /// replay then cover only part of the ledger).
    public var stoppedEarly: Bool
    /// Every checkpoint met, with whether it held.
    public var checkpoints: [(seq: UInt64, checkpoint: Checkpoint, holds: Bool)]
    public var findings: [AuditFinding]
    /// The state the replay ended in.
    public var state: LedgerState
    /// Whether checkpoint signatures were checked against a key the auditor supplied.
    public var keyPinned: Bool
    /// The ledger's id (meta 'ledger_id'), which jurors' statements name: stored outside the
    /// Merkle tree, so shown to the auditor rather than proven.
    public var ledgerID: [UInt8]
    /// The Merkle tree's frontier over the first `rootCovers` records, the latest timestamp,
    /// and every idempotency key: with the state, all a writer needs to go on from a ledger
    /// found sound (`WriterState.init(_:keySeed:)`).
    package var frontier: MerkleFrontier
    package var lastTimestamp: Timestamp
    package var idempotency: SequenceIndex

    /// The finding to lead with: the first event named exactly, unless the hash findings all
    /// agree on a span that ends before it (an altered record whose bytes still decode shows
    /// only as hashes that disagree; the span they share is where it is).
    public var firstBad: AuditFinding? {
        let tampered = findings.filter { $0.severity == .tampered }
        guard !tampered.isEmpty else { return findings.first }
        let exact = tampered.filter { $0.events.count == 1 }.min { $0.events.lowerBound < $1.events.lowerBound }
        let spans = tampered.filter { $0.events.count > 1 }
        var shared: ClosedRange<UInt64>? = spans.first?.events
        for span in spans.dropFirst() {
            guard let s = shared else { break }
            let lower = max(s.lowerBound, span.events.lowerBound), upper = min(s.upperBound, span.events.upperBound)
            shared = lower <= upper ? lower...upper : nil
        }
        if let exact, shared.map({ $0.upperBound >= exact.events.lowerBound }) ?? true { return exact }
        if let shared {
            return AuditFinding(severity: .tampered, events: shared,
                                what: "one of these events was altered: " + spans.map(\.description).joined(separator: "; "))
        }
        return exact ?? spans.min { $0.events.lowerBound < $1.events.lowerBound }
    }

    /// 0 verified, 1 a projection or checkpoint disagrees with the replay, 2 tampering.
    public var exitCode: Int32 {
        if findings.contains(where: { $0.severity == .tampered }) { return 2 }
        return findings.isEmpty ? 0 : 1
    }
}

/// Where an audit's replay begins: from nothing (an auditor's pass over the whole ledger), or
/// from a state kept between starts, whose events it then does not read again (the daemon's
/// check of the events after its snapshot, docs/architecture.md). The voter table and the
/// idempotency index may be kept in files; the replay adds to them in place.
public struct AuditStart: Sendable {
    public var state: LedgerState
    public var frontier: MerkleFrontier
    public var lastTimestamp: Timestamp
    public var keyIndex: SequenceIndex
    /// The seed `keyIndex` hashes idempotency keys with (`KeyHash`).
    public var keySeed: UInt64

    public init(state: LedgerState, frontier: MerkleFrontier, lastTimestamp: Timestamp, keyIndex: SequenceIndex, keySeed: UInt64) {
        self.state = state
        self.frontier = frontier
        self.lastTimestamp = lastTimestamp
        self.keyIndex = keyIndex
        self.keySeed = keySeed
    }

    /// Nothing yet, with tables in memory sized for a ledger of `events`, and this process's
    /// key seed (drawn afresh, so that no ledger can choose keys that crowd one slot).
    public static func empty(events: UInt64) -> AuditStart {
        let capacity = Int(clamping: min(events, 1 << 26))
        return AuditStart(state: LedgerState(voters: TaggedKeySet(capacity: capacity)), frontier: MerkleFrontier(),
                          lastTimestamp: Timestamp(microseconds: 0), keyIndex: SequenceIndex(capacity: capacity),
                          keySeed: IdempotencySlot.seed)
    }
}

/// The auditor's replay of a ledger, from the records alone (no daemon code, no trust in
/// anything stored but the records): `ballot-replay` and its tests use it, and so does the
/// daemon, whenever it checks its ledger.
public enum Audit {
    /// Reads every record in order and checks it: it decodes; sequence numbers have no gaps;
    /// timestamps never go back; no idempotency key repeats; the rules accept it against the
    /// state before it; every stored Merkle node matches the tree recomputed from the records;
    /// every checkpoint's signature (by `pinnedKey` when given), root and digests hold. Then
    /// compares every stored projection with the one the replay gives. It goes on past a
    /// finding (up to `maxFindings` of the records' own and as many of the rest), so that the
    /// report can say where the damage is.
    ///
    /// The ledger is read in segments of 1,024 records, each in a read transaction of its own,
    /// checked on every core (see `SegmentChecker`) and taken in order by the rule pass
    /// (`RulePass`) on this thread, which checks segments too while the next is not ready.
    ///
    /// `helpers` threads check segments besides this one: by default one per core but this
    /// thread's; 0 for an audit that must leave the other cores alone (the daemon's background
    /// check).
    ///
    /// With `start`, the replay begins after `start.state.lastSeq`, from that state (see
    /// `AuditStart`); the report's findings then concern the events after it.
    public static func verify(_ reader: LedgerReader, from start: AuditStart? = nil, pinnedKey: Digest32? = nil,
                              maxFindings: Int = 32, helpers: Int? = nil) throws -> AuditReport {
        try verify(reader, from: start, pinnedKey: pinnedKey, maxFindings: maxFindings, segment: 1024,
                   helpers: helpers ?? ProcessInfo.processInfo.activeProcessorCount - 1)
    }

    /// `verify`, in segments of `segment` records (a power of two), with `helpers` threads
    /// besides this one (tests cut the ledger every way they like).
    static func verify(_ reader: LedgerReader, from start: AuditStart? = nil, pinnedKey: Digest32? = nil, maxFindings: Int = 32,
                       segment: Int, helpers: Int) throws -> AuditReport {
        let helpers = max(0, helpers)
        let size = try reader.size()
        let fresh = start == nil
        let start = start ?? .empty(events: size)
        // Tables made for this audit, in memory: their pages are faulted in on a thread of their
        // own (when the audit may use other cores), not by the rule pass as it fills them. An
        // audit that ends early stops it.
        let pages = fresh && helpers > 0 ? [start.state.voters.keys.anonymousPages, start.keyIndex.anonymousPages].compactMap { $0 } : []
        let stopWarming = StopSignal()
        let warming = pages.isEmpty ? nil : HelperThread(stackSize: 64 << 10) {
            for table in pages { table.populate(until: { stopWarming.isStopped }) }
        }
        defer {
            stopWarming.stop()
            warming?.join()
        }
        var rules = RulePass(start, pinnedKey: pinnedKey, maxFindings: maxFindings, ledgerID: try reader.ledgerID())
        if size > start.state.lastSeq {
            try run(reader, from: rules.next, through: size, segment: segment, helpers: helpers, &rules)
        }
        // A daemon may be appending while we read: compare what the ledger holds at its end (the
        // projections, the last Merkle node) with the events up to that end, catching up on
        // those first. (After the audit stops at its limit, the tree stops short of the end:
        // every stored node past it would look like a trailing one.)
        for _ in 0..<10 where !rules.full {
            let end = try reader.storedEnd()
            if end.size > rules.next - 1 {
                try run(reader, from: rules.next, through: end.size, segment: segment, helpers: helpers, &rules)
                continue
            }
            rules.checkTrailingNodes(end.lastNode)
            rules.compare(end.projections, through: rules.next - 1)
            break
        }
        // The limit is checked between segments, so more may have been noted; keep the
        // `maxFindings` earliest of each kind (a segment's Merkle nodes are compared after its
        // records, so a node over an earlier event can come after later records' findings).
        let findings = inEventOrder(rules.recordFindings).prefix(maxFindings) + inEventOrder(rules.findings).prefix(maxFindings)
        return AuditReport(events: rules.next - 1, root: rules.frontier.root, rootCovers: rules.frontier.size,
                           stoppedEarly: rules.full, checkpoints: rules.checkpoints,
                           findings: inEventOrder(Array(findings)), state: rules.state, keyPinned: pinnedKey != nil, ledgerID: rules.ledgerID,
                           frontier: rules.frontier, lastTimestamp: rules.next == 1 ? Timestamp(microseconds: 0) : rules.lastTime,
                           idempotency: rules.keys.keyIndex)
    }

    /// By first event, in the order noted where that is the same.
    private static func inEventOrder(_ findings: [AuditFinding]) -> [AuditFinding] {
        findings.enumerated()
            .sorted { ($0.element.events.lowerBound, $0.offset) < ($1.element.events.lowerBound, $1.offset) }.map(\.element)
    }

    /// Checks the records from `start` (the ledger's last being `last` when the run begins), a
    /// segment at a time, on `helpers` threads besides this one, and hands the segments to
    /// `rules` in order on this thread; until the end, or until `rules` is full.
    private static func run(_ reader: LedgerReader, from start: UInt64, through last: UInt64, segment: Int, helpers: Int,
                            _ rules: inout RulePass) throws {
        let layout = SegmentLayout(start: start, last: last, size: segment)
        let queue = SegmentQueue<Batch>(count: layout.count, window: 8 * (helpers + 1))
        let seed = rules.keys.seed
        let threads = (1..<(helpers + 1)).map { worker in
            HelperThread(stackSize: 1 << 20) {
                var checker = SegmentChecker(worker: worker, layout: layout, keySeed: seed)
                while let i = queue.claim() { queue.publish(i, checker.check(i, reader, reusing: queue.reusable())) }
            }
        }
        defer {
            queue.cancel()
            for thread in threads { thread.join() }
        }
        rules.start(checkers: helpers + 1)
        var mine = SegmentChecker(worker: 0, layout: layout, keySeed: seed)
        var i = 0
        while i < layout.count {
            if let batch = queue.take(i) {
                i += 1
                try rules.replay(batch, reader)
                if rules.full { return }
                queue.recycle(batch)
            } else if let other = queue.tryClaim() {
                queue.publish(other, mine.check(other, reader, reusing: queue.reusable()))
            } else {
                queue.wait(for: i)
            }
        }
    }

    /// Where a replay stops.
    public enum Until: Sendable {
        case end
        /// Through the event with this sequence number.
        case seq(UInt64)
        /// Through the last event recorded at or before this time.
        case time(Timestamp)
    }

    /// The state after the events up to `until`, and the last event applied. Decodes and folds
    /// only (no checks: `verify` is for that); a record that does not decode throws.
    public static func replay(_ reader: LedgerReader, until: Until = .end) throws -> (state: LedgerState, last: RecordedEvent?) {
        var state = LedgerState()
        var last: RecordedEvent?
        try reader.forEachRecord { record, _, _ in
            switch until {
            case .end: break
            case .seq(let n): if record.seq > n { return false }
            case .time(let t): if record.timestamp > t { return false }
            }
            state.apply(record)
            last = record
            return true
        }
        return (state, last)
    }
}
