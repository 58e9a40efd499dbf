public import BallotDomain
import Foundation

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

/// The auditor's replay of a ledger, from the records alone (no daemon code, no trust in
/// anything stored but the records): `ballot-replay` and its tests use it.
public enum Audit {
    /// Reads every record in order and checks it: it decodes; sequence numbers have no gaps;
    /// timestamps never go back; no idempotency key repeats; the rules accept it against the
    /// state before it; every stored Merkle node matches the tree recomputed from the records;
    /// every checkpoint's signature (by `pinnedKey` when given), root and digests hold. Then
    /// compares every stored projection with the one the replay gives. It goes on past a
    /// finding (up to `maxFindings` of each pass), so that the report can say where the damage is.
    ///
    /// The work runs as two passes on two threads (see `RecordPass` and `RulePass`); the record
    /// pass takes a fresh read transaction every 65,536 records.
    public static func verify(_ reader: LedgerReader, pinnedKey: Digest32? = nil, maxFindings: Int = 32) throws -> AuditReport {
        // How many elections the stored projections name (a tally each): untrusted, and only a
        // hint for sizing the voter table.
        let projections = try reader.storedProjections()[LedgerKeys.projections] ?? [:]
        let tallies = projections.keys.filter { $0.reversed().starts(with: Array("\0tally".utf8).reversed()) }.count
        var rules = RulePass(pinnedKey: pinnedKey, maxFindings: maxFindings, events: try reader.size(), oneElection: tallies == 1)
        var records = RecordPass(maxFindings: maxFindings, keySeed: rules.keys.seed)
        try pipeline(reader, from: 1, &records, &rules)
        // (After a pass stops at its limit, the tree stops short of the end: every stored node
        // past it would look like a trailing one.)
        if !records.full && !rules.full { try rules.checkTrailingNodes(reader) }
        // A daemon may be appending while we read: compare the projections stored with the
        // events they reflect, catching up on those first.
        for _ in 0..<10 where !records.full && !rules.full {
            let (size, stored) = try reader.storedProjectionsWithSize()
            if size > records.next - 1 {
                try pipeline(reader, from: records.next, &records, &rules)
                continue
            }
            rules.compare(stored, through: records.next - 1)
            break
        }
        // Each pass checks its limit between batches, so it may have noted more; keep the
        // `maxFindings` earliest of each (a batch notes its Merkle nodes after its records, so a
        // node over an earlier event can come after later records' findings).
        let findings = (inEventOrder(records.findings).prefix(maxFindings) + inEventOrder(rules.findings).prefix(maxFindings))
        return AuditReport(events: records.next - 1, root: rules.frontier.root, rootCovers: rules.frontier.size,
                           stoppedEarly: records.full || rules.full, checkpoints: rules.checkpoints,
                           findings: inEventOrder(Array(findings)), state: rules.state, keyPinned: pinnedKey != nil)
    }

    /// By first event, in the order noted where that is the same.
    private static func inEventOrder(_ findings: [AuditFinding]) -> [AuditFinding] {
        findings.enumerated()
            .sorted { ($0.element.events.lowerBound, $0.offset) < ($1.element.events.lowerBound, $1.offset) }.map(\.element)
    }

    /// Runs `records` from `start` on a thread of its own, handing what decodes to `rules` on
    /// this one, so that hashing and decoding overlap with the replay through the rules.
    private static func pipeline(_ reader: LedgerReader, from start: UInt64, _ records: inout RecordPass,
                                 _ rules: inout RulePass) throws {
        let handoff = Handoff<RecordPass.Batch>(limit: 8)
        // Hand the pass over rather than copy it (it runs on the other thread).
        let producer = Producer(RecordPass(maxFindings: 0, keySeed: 0))
        swap(&producer.pass, &records)
        let thread = Thread {
            do {
                try producer.pass.scan(reader, from: start, into: handoff)
            } catch {
                producer.error = error
            }
            handoff.finish()
            producer.done.signal()
        }
        thread.stackSize = 1 << 20
        thread.start()
        while let batch = handoff.take() {
            rules.replay(batch, reader)
            if rules.full { handoff.cancel() }
        }
        producer.done.wait()
        swap(&producer.pass, &records)
        if let error = producer.error { throw error }
    }

    /// The record pass and its outcome, owned by the producer thread until it signals `done`.
    private final class Producer: @unchecked Sendable {
        var pass: RecordPass
        var error: (any Error)?
        let done = DispatchSemaphore(value: 0)
        init(_ pass: RecordPass) { self.pass = pass }
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
