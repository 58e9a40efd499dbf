public import BallotDomain

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
    /// The Merkle root recomputed from the records.
    public var root: MerkleHash
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
    /// finding (up to `maxFindings`), so that the report can say where the damage is.
    public static func verify(_ reader: LedgerReader, pinnedKey: Digest32? = nil, maxFindings: Int = 32,
                              progress: ((UInt64) -> Void)? = nil) throws -> AuditReport {
        var run = Run(pinnedKey: pinnedKey, maxFindings: maxFindings)
        try run.scan(reader, from: 1, progress: progress)
        try run.checkTrailingNodes(reader)
        // A daemon may be appending while we read: compare the projections stored with the
        // events they reflect, catching up on those first.
        for _ in 0..<10 where !run.full {
            let (size, stored) = try reader.storedProjectionsWithSize()
            if size > run.next - 1 {
                try run.scan(reader, from: run.next, progress: progress)
                continue
            }
            run.compare(stored)
            break
        }
        return AuditReport(events: run.next - 1, root: run.frontier.root, checkpoints: run.checkpoints, findings: run.findings,
                           state: run.state, keyPinned: pinnedKey != nil)
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

    private struct Run {
        let pinnedKey: Digest32?
        let maxFindings: Int
        var state = LedgerState()
        var frontier = MerkleFrontier()
        var keys = Key128Map<UInt64>()
        var lastTime = Timestamp(microseconds: .min)
        var next: UInt64 = 1
        var findings: [AuditFinding] = []
        var checkpoints: [(seq: UInt64, checkpoint: Checkpoint, holds: Bool)] = []

        init(pinnedKey: Digest32?, maxFindings: Int) {
            self.pinnedKey = pinnedKey
            self.maxFindings = maxFindings
        }

        var full: Bool { findings.count >= maxFindings }

        mutating func note(_ severity: AuditFinding.Severity, _ events: ClosedRange<UInt64>, _ what: String) {
            findings.append(AuditFinding(severity: severity, events: events, what: what))
        }

        mutating func scan(_ reader: LedgerReader, from start: UInt64, progress: ((UInt64) -> Void)?) throws {
            try reader.scan(from: start) { seq, bytes, record, storedNode in
                check(seq, bytes, record, storedNode)
                if seq & 0xFFFF == 0 { progress?(seq) }
                return !full
            }
        }

        mutating func check(_ seq: UInt64, _ bytes: UnsafeRawBufferPointer, _ lookup: (UInt64) throws -> RecordedEvent?,
                            _ storedNode: (Int, UInt64) throws -> MerkleHash??) {
            if seq != next {
                note(.tampered, next...next, "event \(next) is missing: the next stored event is \(seq)")
            }
            next = seq + 1
            let leaf = MerkleHash.leaf(bytes)
            defer { appendLeaf(leaf, storedNode) }
            let record: RecordedEvent
            do {
                record = try RecordCodec.decode(bytes, seq: seq)
            } catch {
                if case .corruptRecord(_, let reason) = error { note(.tampered, seq...seq, reason) } else { note(.tampered, seq...seq, "\(error)") }
                return
            }
            if record.timestamp < lastTime {
                note(.tampered, seq...seq, "its timestamp \(record.timestamp) is earlier than the event before it (\(lastTime))")
            }
            lastTime = max(lastTime, record.timestamp)
            if !record.idempotencyKey.isEmpty {
                let slot = IdempotencySlot.key(record.idempotencyKey)
                if let first = keys[slot] {
                    note(.tampered, seq...seq, "idempotency key '\(record.idempotencyKey)' was already used by event \(first)")
                } else {
                    keys.insert(slot, seq)
                }
            }
            do {
                if let refusal = try state.check(record, lookupVote: { vote in
                    guard case .voteCast(let v)? = try lookup(vote)?.event else { return nil }
                    return v
                }) {
                    note(.tampered, seq...seq, "the rules refuse this \(record.event.kind) event: \(refusal.message)")
                }
            } catch {
                note(.tampered, seq...seq, "the event it refers to cannot be read: \(error)")
            }
            if case .checkpointSigned(let checkpoint) = record.event {
                let finding = checkpoint.finding(root: frontier.root, state: state, pinnedKey: pinnedKey)
                switch finding {
                case .badSignature(let what)?: note(.tampered, seq...seq, "checkpoint: \(what)")
                case .wrongRoot(let what)?: note(.tampered, 1...max(checkpoint.size, 1), "checkpoint at event \(seq): \(what)")
                case .disagrees(let what)?: note(.disagrees, seq...seq, "checkpoint: \(what)")
                case nil: break
                }
                checkpoints.append((seq, checkpoint, finding == nil))
            }
            state.apply(record)
        }

        /// Adds the leaf and compares each stored node it completes. A node over a span that
        /// already holds a disagreeing node adds nothing: every node above an altered record
        /// disagrees, and the lowest one says the most.
        mutating func appendLeaf(_ leaf: MerkleHash, _ storedNode: (Int, UInt64) throws -> MerkleHash??) {
            var completed: [(level: Int, index: UInt64, hash: MerkleHash)] = []
            frontier.append(leaf) { level, index, hash in
                if level >= LedgerKeys.firstStoredLevel { completed.append((level, index, hash)) }
            }
            for node in completed {
                let span = ((node.index << UInt64(node.level)) + 1)...((node.index + 1) << UInt64(node.level))
                let stored: MerkleHash??
                do {
                    stored = try storedNode(node.level, node.index)
                } catch {
                    note(.tampered, span, "the Merkle node (level \(node.level)) over them cannot be read: \(error)")
                    continue
                }
                if findings.contains(where: { $0.events.count > 1 && span.contains($0.events.lowerBound) && span.contains($0.events.upperBound) }) { continue }
                switch stored {
                case nil: note(.tampered, span, "their Merkle node (level \(node.level)) is missing from 'merkle'")
                case .some(nil): note(.tampered, span, "their stored Merkle node (level \(node.level)) is not 32 bytes")
                case .some(let hash?) where hash != node.hash:
                    note(.tampered, span, "they do not hash to their stored Merkle node (level \(node.level)): one of them, or the node, was altered")
                default: break
                }
            }
        }

        /// A node stored past the last event means events were cut off the end.
        mutating func checkTrailingNodes(_ reader: LedgerReader) throws {
            guard let last = try reader.lastStoredNode() else { return }
            let leaves = frontier.size
            if last.level < 0 || last.lastLeaf >= leaves {
                let seq = leaves + 1
                note(.tampered, seq...seq, "the 'merkle' database holds a node over events up to \(last.lastLeaf &+ 1), past the last event (\(leaves)): events were removed from the end")
            }
        }

        /// Every stored projection must be the one the replay gives, and no other may be there.
        mutating func compare(_ stored: [String: [[UInt8]: [UInt8]]]) {
            let expected = LedgerReader.expectedProjections(of: state)
            for db in [LedgerKeys.projections, LedgerKeys.series] {
                let have = stored[db] ?? [:], want = expected[db] ?? [:]
                for key in Set(have.keys).union(want.keys).sorted(by: { $0.lexicographicallyPrecedes($1) }) where have[key] != want[key] {
                    let name = Self.describe(key, in: db)
                    let election = state.elections.first { name.hasPrefix("'\($0.id)'") }
                    let at = election?.lastSeq ?? max(next - 1, 1)
                    let what = want[key] == nil ? "is stored but the replay gives no such document"
                        : have[key] == nil ? "is missing" : "differs from the replay of events 1…\(next - 1)"
                    note(.disagrees, at...at, "the stored \(name) \(what)")
                }
            }
        }

        /// `'imdi-2022' tally` or `'imdi-2022' series bucket 2022-11-03T00:00:00Z`.
        static func describe(_ key: [UInt8], in db: String) -> String {
            guard let zero = key.firstIndex(of: 0) else { return "\(db) entry \(key)" }
            let election = String(decoding: key[..<zero], as: UTF8.self)
            let rest = Array(key[(zero + 1)...])
            if db == LedgerKeys.series, rest.count == 8 {
                let start = Int64(bitPattern: rest.withUnsafeBytes { UInt64(bigEndian: $0.loadUnaligned(as: UInt64.self)) } ^ (1 << 63))
                return "'\(election)' series bucket \(Timestamp(microseconds: start).rfc3339)"
            }
            return "'\(election)' \(String(decoding: rest, as: UTF8.self))"
        }
    }
}
